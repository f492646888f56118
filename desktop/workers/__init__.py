"""Qt glue between the engine and the window: the model worker on its own thread."""
