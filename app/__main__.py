"""Entry shim: `python -m app` and the frozen binary both start here."""

import sys

if __name__ == "__main__":
    if getattr(sys, "frozen", False):
        # Must run first: in a frozen binary, spawned pool workers re-enter this file. Anywhere
        # else freeze_support() does nothing, and the long-lived supervisor need not carry
        # multiprocessing (1.5 MB resident) for it.
        import multiprocessing

        multiprocessing.freeze_support()
    from app.cli import main

    raise SystemExit(main())
