"""PyInstaller runtime hook: let sounddevice find the PortAudio library bundled in the frozen app.

On Linux sounddevice loads PortAudio by `ctypes.util.find_library("portaudio")`, which looks only at the
system's linker cache, so the copy PyInstaller bundles next to the app would never be found. Answer that one
name with the bundled file; with none bundled, fall through to the system's copy.
"""

import ctypes.util
import os
import sys

_find_library = ctypes.util.find_library
_bundled = os.path.join(getattr(sys, "_MEIPASS", ""), "libportaudio.so.2")


def _find_library_bundled_first(name: str) -> str | None:
    if name == "portaudio" and os.path.isfile(_bundled):
        return _bundled
    return _find_library(name)


ctypes.util.find_library = _find_library_bundled_first
