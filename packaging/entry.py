"""Entry point of the PyInstaller binary (build.spec): the frozen twin of `app/__main__.py`.

`multiprocessing.freeze_support()` must run before anything else but the install of the second
unpacking stage (app/lazy_unpack.py, which workers need as much as servers): the training pool's
spawned workers (and multiprocessing's resource tracker) are this same executable started with
`--multiprocessing-fork` / `-c ...` arguments, and PyInstaller's multiprocessing runtime hook
turns freeze_support() into "run the worker and exit" for them. Nothing a worker must import is
defined here (spawn does not re-run this file in a frozen program).
"""

import multiprocessing

if __name__ == "__main__":
    from app.lazy_unpack import install

    install()
    multiprocessing.freeze_support()
    from app.cli import main

    raise SystemExit(main())
