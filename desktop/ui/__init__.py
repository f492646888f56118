"""The window and its widgets (PySide6 only here and in desktop.workers)."""
