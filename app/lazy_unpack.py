"""The onefile binary's deferred unpacking: big libraries leave the bootloader's critical path.

A onefile bootloader inflates everything it carries into its unpack folder (`sys._MEIPASS`)
before Python starts, on every start, on one core: on a small 2-core box about 1.3 s for our
230 MB, while the other core idles. So build.spec packs the biggest packages into zips that the
bootloader copies out as they are (stored, not inflated), and Python unpacks them into the same
folder when they are needed, under a lock the processes of one run share:

- numpy, which the inference server imports as it starts: the supervisor unpacks it at once, on
  the other core, while it launches the servers;
- onnxruntime, and scipy, scikit-learn and ONNX (two thirds of the bytes), which no server needs
  to start on an empty data dir (the registry imports them on the first upload or job, the
  inference server on the first model load: onnxruntime alone for a model with an ONNX twin):
  the supervisor unpacks them at low priority once both servers answer. When the data dir
  holds files it unpacks onnxruntime right after numpy (production models are loaded before
  the inference server reports ready). Unpacking more early would slow the servers' start.

Whichever process imports one of these packages first unpacks it (or waits for whoever is at
it), then deletes the zip. The bootloader removes the folder at exit as before. Outside a
onefile build (from source, the onedir build) there are no zips and nothing here acts.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import logging
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import ModuleType

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Part:
    """One deferred zip: the packages whose import needs it and the bundle folders it holds
    (theirs and the libraries their wheels vendor). Nothing outside may need a file inside."""

    payload: str
    packages: frozenset[str]
    folders: frozenset[str]

    @property
    def done_marker(self) -> str:
        return self.payload + ".unpacked"


NUMPY = Part("modeldepot-numpy.zip", frozenset({"numpy"}), frozenset({"numpy", "numpy.libs"}))
# What serving an ONNX twin needs, apart: the inference server loads a model's twin when it has
# one, and need not wait for scikit-learn then.
ONNX_RUNTIME = Part("modeldepot-onnxruntime.zip", frozenset({"onnxruntime"}),
                    frozenset({"onnxruntime"}))
MODEL_LIBRARIES = Part(
    "modeldepot-libs.zip",
    frozenset({"scipy", "sklearn", "onnx", "ml_dtypes"}),
    frozenset({"scipy", "scipy.libs", "sklearn", "scikit_learn.libs", "onnx", "ml_dtypes"}),
)
PARTS = (NUMPY, ONNX_RUNTIME, MODEL_LIBRARIES)
_LOCK = "modeldepot-unpack.lock"


def deferred_part(bundle_path: str) -> Part | None:
    """The zip build.spec puts this bundled file (its path inside the bundle) in, if any."""
    parts = PurePosixPath(bundle_path.replace("\\", "/")).parts
    if len(parts) < 2:
        return None  # top-level files (shared libraries many packages load) stay with the rest
    return next((p for p in PARTS if parts[0] in p.folders), None)


class _Unpacker:
    """One deferred part of one unpack folder, as this process sees it."""

    def __init__(self, folder: Path, part: Part) -> None:
        self.folder = folder
        self.part = part
        self._lock = threading.Lock()
        self._done = (folder / part.done_marker).exists()

    @property
    def done(self) -> bool:
        return self._done

    def unpack(self, reason: str, stop: threading.Event | None = None) -> None:
        """Unpack once per folder: the first process does it, the others wait for it.
        `stop`, once set, ends the work between two files (Stopped), leaving no marker."""
        if self._done:
            return
        import time

        from app.oslock import held

        started = time.monotonic()
        # One lock for every part, so no process holds one part's lock while waiting for
        # another's (no deadlock); the price is that a part may wait for another's unpacking,
        # a second at most, which is why the supervisor unpacks them in the order they are needed.
        with self._lock, held(self.folder / _LOCK):
            if not (self.folder / self.part.done_marker).exists():
                extract(self.folder / self.part.payload, self.folder, stop)
                (self.folder / self.part.done_marker).touch()
                # Its files are out: the zip's copy would only hold space (RAM on a tmpfs).
                (self.folder / self.part.payload).unlink(missing_ok=True)
                log.info("Unpacked %s (%s) in %.2f s.", self.part.payload, reason,
                         time.monotonic() - started)
        importlib.invalidate_caches()
        self._done = True


class Stopped(Exception):
    """Unpacking was asked to stop (the supervisor is about to remove the folder)."""


def extract(archive: Path, folder: Path, stop: threading.Event | None = None) -> None:
    """Write every member of `archive` under `folder`, each file complete before its name exists.

    No fsync: the folder lives for one run and is gone after a crash anyway; a process killed
    half-way leaves no marker, so the next one starts over.
    """
    import shutil
    import zipfile

    root = folder.resolve()
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            if stop is not None and stop.is_set():
                raise Stopped
            target = (root / info.filename).resolve()
            if root not in target.parents:  # our own build wrote it; still, never outside
                raise ValueError(f"{archive.name}: member {info.filename!r} leaves the folder")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            part = target.with_name(target.name + ".part")
            with zf.open(info) as src, open(part, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            os.chmod(part, (info.external_attr >> 16) & 0o777 or 0o644)
            os.replace(part, target)


class _UnpackOnImport(importlib.abc.MetaPathFinder):
    """First on sys.meta_path: unpacks a part before any finder looks for a package in it."""

    def __init__(self, unpackers: Sequence[_Unpacker]) -> None:
        self.unpackers = tuple(unpackers)

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        top = fullname.partition(".")[0]
        for unpacker in self.unpackers:
            if not unpacker.done and top in unpacker.part.packages:
                try:
                    unpacker.unpack(f"to import {fullname}")
                except Exception as exc:  # disk full, a damaged zip: the import fails, saying why
                    raise ImportError(f"{fullname} is not available: unpacking "
                                      f"{unpacker.part.payload} into {unpacker.folder} failed: "
                                      f"{exc}", name=fullname) from exc
        return None  # the usual finders import it, now that its files are there


_unpackers: dict[str, _Unpacker] = {}
_stop = threading.Event()
_threads: list[threading.Thread] = []


def install() -> None:
    """Called first by the frozen entry point, in every process of the binary."""
    bundle = getattr(sys, "_MEIPASS", None)
    if not getattr(sys, "frozen", False) or not bundle or _unpackers:
        return
    folder = Path(bundle)
    for part in PARTS:
        if (folder / part.payload).is_file():
            _unpackers[part.payload] = _Unpacker(folder, part)
    pending = [u for u in _unpackers.values() if not u.done]
    if pending:
        sys.meta_path.insert(0, _UnpackOnImport(pending))


def unpack_in_background(first: Sequence[Part] = (), then: Sequence[Part] = ()
                         ) -> threading.Thread | None:
    """Unpack, in one thread, `first` at once and `then` at low priority, in this order: the
    parts are wanted before a first import needs them, but not at the expense of a server."""

    def pending(parts: Sequence[Part]) -> list[_Unpacker]:
        return [u for u in (_unpackers.get(p.payload) for p in parts) if u and not u.done]

    urgent, later = pending(first), pending(then)
    if not urgent and not later:
        return None

    def run() -> None:
        for unpacker in urgent:
            _unpack_or_log(unpacker)
        if later and hasattr(os, "setpriority"):
            try:  # on Linux, a thread's own nice value
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
            except OSError:
                pass
        for unpacker in later:
            _unpack_or_log(unpacker)

    thread = threading.Thread(target=run, name="modeldepot-unpack", daemon=True)
    _threads.append(thread)
    thread.start()
    return thread


def stop_unpacking(timeout: float = 10.0) -> None:
    """End this process's background unpacking (between two files) and wait for it: nothing
    may write into the folder while it is being removed."""
    _stop.set()
    for thread in _threads:
        thread.join(timeout)


def _unpack_or_log(unpacker: _Unpacker) -> None:
    if _stop.is_set():
        return
    try:
        unpacker.unpack("in the background", _stop)
    except Stopped:
        pass
    except Exception as exc:  # the first import that needs it tries again, and says why
        log.warning("Unpacking %s into %s failed: %s", unpacker.part.payload, unpacker.folder, exc)
