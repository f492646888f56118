"""Switches off every dependency's telemetry, before that dependency is imported.

Verbatim sends nothing anywhere unless the user downloads a model. Some libraries it uses would, by
default, report usage on their own:

- ONNX Runtime (faster-whisper's Silero VAD) on Linux, when imported, writes a device id and a queue of
  events under ~/.cache/Microsoft/DeveloperTools/.onnxruntime and starts a thread that resolves and posts
  to mobile.events.data.microsoft.com. Only ORT_DISABLE_TELEMETRY, set before the import, stops all of it:
  `onnxruntime.disable_telemetry_events()` runs after the import, when the files are already written and
  the uploader already started.
- huggingface_hub and hf_xet send usage headers, an "agent registry" request and transfer reports with
  a download. The download itself (on the user's request) still works.

CTranslate2, PyAV, sounddevice/PortAudio and Qt collect nothing.

`disable_telemetry()` only sets environment variables, so it is cheap, idempotent, and inherited by every
process Verbatim starts; each entry point calls it first thing, and so does the engine package, through
which every import of onnxruntime goes.
"""

from __future__ import annotations

import logging
import os
import sys

# Values chosen so each library reads them as "off"; a user's own setting of these is overridden.
TELEMETRY_OFF = {
    "ORT_DISABLE_TELEMETRY": "1",  # ONNX Runtime's 1DS telemetry (Linux, macOS)
    "HF_HUB_DISABLE_TELEMETRY": "1",  # huggingface_hub and hf_xet
    "HF_XET_TELEMETRY_ENABLED": "false",  # hf_xet's transfer reports, named outright
    "DO_NOT_TRACK": "1",  # the cross-tool convention (https://donottrack.sh), read by huggingface_hub too
}

_log = logging.getLogger(__name__)


def disable_telemetry() -> None:
    """Set every library's telemetry switch to off. Call before importing any of them."""
    for name, value in TELEMETRY_OFF.items():
        if os.environ.get(name) != value:
            os.environ[name] = value
    onnxruntime = sys.modules.get("onnxruntime")
    if onnxruntime is not None and not getattr(disable_telemetry, "_late_warned", False):
        # Imported already: its files exist and its uploader runs; stop what can still be stopped.
        disable_telemetry._late_warned = True  # type: ignore[attr-defined]
        _log.warning("onnxruntime was imported before its telemetry was switched off")
        switch_off = getattr(onnxruntime, "disable_telemetry_events", None)
        if switch_off is not None:
            switch_off()
