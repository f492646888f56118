"""No Qt: audio in and out through sounddevice. Microphone capture (input devices, a recorder that writes
FLAC as it records, level metering, the bookkeeping of the live draft) and playback for the editor."""
