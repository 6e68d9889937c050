"""Entry shim: `python -m app` and the frozen binary both start here."""

import multiprocessing

if __name__ == "__main__":
    # Must run first: in a frozen binary, spawned pool workers re-enter this file.
    multiprocessing.freeze_support()
    from app.cli import main

    raise SystemExit(main())
