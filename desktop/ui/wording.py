"""Small pieces of the window's sentences."""

from __future__ import annotations


def count(n: int, noun: str) -> str:
    """'1 file', '3 files'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
