"""Qt-free domain layer: segments, transcripts, jobs, the library store, exporters."""
