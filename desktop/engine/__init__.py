"""Qt-free transcription engine: models, audio decoding, VAD chunking, cross-file batching.

Heavy libraries (faster_whisper, ctranslate2, av) are imported lazily inside functions so that
importing this package is cheap and the window appears at once."""

from desktop.core.privacy import disable_telemetry

# Every import of onnxruntime (faster-whisper's VAD) goes through this package: switch telemetry off first.
disable_telemetry()
