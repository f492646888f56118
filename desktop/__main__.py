import multiprocessing
import sys

from desktop.cli import main

# The guard matters: the engine's worker processes are spawned, and a spawned child imports the
# main module again (as __mp_main__); without it each worker would start the app.
if __name__ == "__main__":
    multiprocessing.freeze_support()  # a frozen app's workers start here (PyInstaller)
    sys.exit(main())
