"""Write a version's load cache (app/formats/load_cache.py) from the estimator a pool worker
loaded from the version's served file, with every check a server applies.

Called by the compile job (twin_build.py), which loads the version anyway; it runs whether or
not twins are on (hooks.py). A model the cache cannot hold (a name the policy refuses) is logged
and keeps loading from its served file.
"""

from __future__ import annotations

import logging
import pickle
from typing import Any

from app.errors import ModelDepotError
from app.store import VersionRecord
from app.store.catalog import Store
from app.store.load_caches import record_load_cache

log = logging.getLogger(__name__)


def write_load_cache(store: Store, record: VersionRecord, estimator: Any) -> str:
    """Pickle, record; returns a line for the job's log saying what happened."""
    from app.formats.linear import serves_from_arrays
    from app.formats.load_cache import dump_cache
    from app.formats.signature import Signature

    try:
        signature = Signature.from_dict(record.signature) if record.signature else None
    except (ModelDepotError, ValueError, TypeError, KeyError):
        signature = None
    try:
        # Inference answers a linear model from its arrays only where its signature's requests
        # arrive as floats; other versions keep the pickle (app/inference/loaded.py).
        data, recipe = dump_cache(estimator, arrays_served=serves_from_arrays(signature))
    except ModelDepotError as exc:
        log.info("%s version %d gets no load cache: %s", record.model, record.version,
                 exc.message)
        return f"No load cache: {exc.message}"
    except (pickle.PicklingError, TypeError, AttributeError) as exc:  # an unpicklable part
        log.info("%s version %d gets no load cache: %r", record.model, record.version, exc)
        return f"No load cache: the model does not pickle ({type(exc).__name__})."
    if not record_load_cache(store, record.id, data, recipe.to_dict()):
        return "No load cache: the version was deleted."
    log.info("load cache of %s version %d written (%d bytes)", record.model, record.version,
             len(data))
    return f"Load cache written ({len(data)} bytes)."
