"""The model libraries' import, once per process, in one thread.

Imports are process-wide, so this one lock is too (the exception to "no module-level state").
"""

from __future__ import annotations

import threading


def import_model_libraries() -> None:
    """Import scikit-learn, skops and ONNX once, in one thread, before a request needs them.

    Two threads importing scikit-learn at the same time can see it half-initialised (an
    ImportError such as "cannot import name 'clone' from 'sklearn.base'"), so every request
    that needs these libraries comes through here. They are not imported at start: that would
    slow both servers' start on a small box and cost the idle registry ~100 MB; the first upload
    or training request pays the ~2 s instead.
    """
    global _model_libraries_imported
    if _model_libraries_imported:
        return
    with _import_lock:
        if not _model_libraries_imported:
            import onnx  # noqa: F401
            import sklearn.ensemble  # noqa: F401
            import sklearn.linear_model  # noqa: F401
            import skops.io  # noqa: F401

            import app.formats.inspection  # noqa: F401

            _model_libraries_imported = True


_import_lock = threading.Lock()
_model_libraries_imported = False
