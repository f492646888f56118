"""The frozen app's entry point (packaging/verbatim.spec); `python -m desktop` is the same program unfrozen."""

import multiprocessing
import sys

if __name__ == "__main__":
    # First thing: the engine's worker processes are spawned, and in a frozen app a spawned child is this
    # executable again with multiprocessing's arguments; freeze_support() runs the child's work and exits.
    multiprocessing.freeze_support()
    from desktop.cli import main

    sys.exit(main())
