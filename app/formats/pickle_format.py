"""pickle and joblib files: scan without loading, then (only when trusted) load with a guard.

The guard is the allow-list inside `find_class`: it hands the unpickler the object the rule
resolved (policy.resolve), never importing anything itself, so even if the scan and the real
unpickler ever read a stream differently, nothing outside the list is ever reached. Trust only
means the file may be opened at all; it never widens the list.
"""

from __future__ import annotations

import inspect
import io
import pickle
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from app.errors import InvalidModelFile, UnsafeModel
from app.formats import policy
from app.formats.compression import compression_of, open_decompressed
from app.formats.environment import LoadRecord, recording_versions
from app.formats.pickle_scan import PickleScan, scan_pickle
from app.formats.zip_safety import ZipLimits


@contextmanager
def _open(source: Path | bytes, limits: ZipLimits) -> Any:
    raw: BinaryIO
    raw = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
    try:
        kind = compression_of(raw.read(8))
        size = raw.seek(0, io.SEEK_END)
        raw.seek(0)
        # A few MB that inflate to GB would fill memory before the trust check: the zip rule.
        yield (open_decompressed(raw, kind, limits.expansion_cap(size)) if kind else raw), kind
    finally:
        raw.close()


def scan(source: Path | bytes, limits: ZipLimits = ZipLimits()) -> tuple[PickleScan, str]:
    """The scan and the detail ("joblib" or "pickle"); UnsafeModel for names outside the
    allow-list."""
    with _open(source, limits) as (stream, kind):
        result = scan_pickle(stream)
    detail = "joblib" if kind or result.joblib_arrays else "pickle"
    if detail == "joblib" and result.unidentified_builds:
        raise InvalidModelFile(
            "The joblib file sets the state of an object the scan cannot identify; joblib's "
            "loader would read array bytes after it if it were an array record, so the scan "
            "cannot read it the way the loader would."
        )
    return result, detail


class _GuardedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return policy.resolve(module, name)


def _joblib_unpickler(stream: BinaryIO, mmap_from: Path | None = None) -> Any:
    """joblib's unpickler, guarded; with `mmap_from`, its arrays map that (uncompressed) file
    instead of being read into memory."""
    from joblib.numpy_pickle import NumpyUnpickler

    class GuardedNumpyUnpickler(NumpyUnpickler):  # type: ignore[misc]
        def find_class(self, module: str, name: str) -> Any:
            return policy.resolve(module, name)

    # joblib 1.5 added ensure_native_byte_order between file_handle and mmap_mode.
    filename, mode = (str(mmap_from), "r") if mmap_from is not None else ("", None)
    if "ensure_native_byte_order" in inspect.signature(NumpyUnpickler.__init__).parameters:
        # A memmap keeps the file's byte order, so joblib forbids asking for native order.
        return GuardedNumpyUnpickler(filename, stream, mode is None, mmap_mode=mode)
    return GuardedNumpyUnpickler(filename, stream, mmap_mode=mode)  # pragma: no cover


def load_pickle(
    source: Path | bytes,
    limits: ZipLimits = ZipLimits(),
    scanned: tuple[PickleScan, str] | None = None,
    *,
    mmap: bool = False,
) -> tuple[Any, LoadRecord, PickleScan, str]:
    """Scan (unless `scanned` is this source's scan), then load. Only for trusted files.

    `mmap` maps the arrays of an uncompressed joblib file read-only instead of reading them, for
    a caller that only inspects the object: a 1 GB upload is checked without 1 GB of memory.
    """
    result, detail = scanned if scanned is not None else scan(source, limits)
    try:
        with _open(source, limits) as (stream, kind), recording_versions() as record:
            if detail == "joblib":
                mappable = source if isinstance(source, Path) and mmap and kind is None else None
                obj = _joblib_unpickler(stream, mappable).load()
            else:
                obj = _GuardedUnpickler(stream).load()
    except (UnsafeModel, InvalidModelFile):
        raise
    except ModuleNotFoundError as exc:
        raise InvalidModelFile(
            f"The pickle needs the Python module {exc.name!r}, which is not installed here."
        ) from exc
    except Exception as exc:
        raise InvalidModelFile(
            f"The pickle could not be loaded ({type(exc).__name__}); it may be damaged or need "
            "code that is not installed here."
        ) from exc
    return obj, record, result, detail
