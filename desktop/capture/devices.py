"""Audio input devices, as PortAudio (through sounddevice) sees them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class CaptureError(Exception):
    """A recording could not start or could not go on; the message is for the user."""


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    host_api: str
    channels: int
    default_sample_rate: float
    is_default: bool = False

    @property
    def label(self) -> str:
        return f"{self.name} ({self.host_api})" if self.host_api else self.name


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # sounddevice raises OSError when the PortAudio library is missing
        raise CaptureError(f"audio input is not available: {exc}") from None
    return sounddevice


def list_inputs() -> list[InputDevice]:
    """Every device with at least one input channel, the system default first marked."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        host_apis = sd.query_hostapis()
        default_index = _default_input_index(sd)
    except sd.PortAudioError as exc:
        raise CaptureError(f"cannot list audio inputs: {exc}") from None
    inputs = []
    for info in devices:
        if int(info["max_input_channels"]) < 1:
            continue
        host_api = host_apis[info["hostapi"]]["name"] if 0 <= info["hostapi"] < len(host_apis) else ""
        inputs.append(
            InputDevice(
                index=int(info["index"]),
                name=str(info["name"]),
                host_api=str(host_api),
                channels=int(info["max_input_channels"]),
                default_sample_rate=float(info["default_samplerate"]),
                is_default=int(info["index"]) == default_index,
            )
        )
    return inputs


def _default_input_index(sd: Any) -> int | None:
    default = sd.default.device
    index = default[0] if isinstance(default, (list, tuple)) or hasattr(default, "__getitem__") else default
    try:
        index = int(index)
    except (TypeError, ValueError):
        return None
    if index < 0:
        return None
    return index


def resolve_input(spec: int | str | None = None) -> InputDevice:
    """The device to record from: None for the system default, an index, or part of a device's name
    (case-insensitive). Raises CaptureError with the choices when there is no such input."""
    inputs = list_inputs()
    if not inputs:
        raise CaptureError("no audio input device found (is a microphone connected, or PulseAudio running?)")
    if spec is None or spec == "":
        chosen = next((d for d in inputs if d.is_default), None)
        return chosen or inputs[0]
    text = str(spec).strip()
    if text.isdigit():
        index = int(text)
        for device in inputs:
            if device.index == index:
                return device
        raise CaptureError(f"no audio input with index {index}; inputs: {_choices(inputs)}")
    matches = [d for d in inputs if text.lower() in d.name.lower()]
    exact = [d for d in matches if d.name.lower() == text.lower()]
    if len(exact) == 1:
        return exact[0]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise CaptureError(f"no audio input named {text!r}; inputs: {_choices(inputs)}")
    raise CaptureError(f"{text!r} matches several inputs: {_choices(matches)}; use the index")


def _choices(inputs: list[InputDevice]) -> str:
    return ", ".join(f"{d.index}: {d.name}" for d in inputs)
