"""The frozen app's entry point (packaging/verbatim.spec); `python -m desktop` is the same program unfrozen."""

import multiprocessing
import sys

if __name__ == "__main__":
    # Before anything else, a spawned worker's work included: no library may report usage (desktop/core/privacy.py);
    # it only sets environment variables, so it is safe ahead of freeze_support().
    from desktop.core.privacy import disable_telemetry

    disable_telemetry()
    # Then at once: the engine's worker processes are spawned, and in a frozen app a spawned child is this
    # executable again with multiprocessing's arguments; freeze_support() runs the child's work and exits.
    multiprocessing.freeze_support()
    from desktop.cli import main

    sys.exit(main())
