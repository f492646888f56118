"""Verbatim: private desktop transcription."""

__version__ = "0.1.0"
