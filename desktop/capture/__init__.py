"""No Qt: audio in and out through sounddevice. Microphone capture (input devices, a recorder that writes
FLAC as it records, level metering) and playback for the editor. The live draft of a recording is
transcription, so it lives in desktop.engine.draft."""
