"""Microphone capture without Qt: input devices, a recorder that writes FLAC as it records, level metering,
and the bookkeeping of the live draft."""
