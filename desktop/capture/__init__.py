"""No Qt: audio in (microphone streams) and out (playback) through sounddevice."""
