"""Errors from the operating system reported as what they are, never as the client's fault.

An upload that fails because this process ran out of descriptors, memory or disk used to come
back as "the pickle could not be loaded; it may be damaged": a check caught the OSError and
blamed the file. `resource_error` looks through an exception and everything that caused it for
such an error and answers with a server-side one: 503 (with Retry-After) for descriptors and
memory, 507 for a full disk, each naming the resource.
"""

from __future__ import annotations

import errno
import logging
import sqlite3

from app.errors import InsufficientStorage, ModelDepotError, OutOfResources

log = logging.getLogger(__name__)

Shortage = tuple[type[ModelDepotError], str, str]  # error class, code, message
_MEMORY: Shortage = (OutOfResources, "out_of_memory",
           "The server ran out of memory while handling this request; the request itself may "
           "be fine. Try again when it is less busy, or give it more memory.")
_DESCRIPTORS: Shortage = (OutOfResources, "out_of_descriptors",
                "The server ran out of open files (file descriptors) while handling this "
                "request; the request itself may be fine. Try again shortly; if it persists, "
                "raise the open-file limit (LimitNOFILE in the systemd unit, ulimit -n).")
_DISK: Shortage = (InsufficientStorage, "disk_full",
         "The server's disk is full (or its quota is used up); nothing was stored. Free space "
         "in the data dir and send it again.")
SHORTAGES: dict[int, Shortage] = {
    errno.ENOMEM: _MEMORY,
    errno.EMFILE: _DESCRIPTORS,
    errno.ENFILE: _DESCRIPTORS,
    errno.ENOSPC: _DISK,
    errno.EDQUOT: _DISK,
}


def resource_error(exc: BaseException) -> ModelDepotError | None:
    """The server-side error for an OS resource shortage in `exc` or its causes, else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found = _classify(current)
        if found is not None:
            return found
        current = current.__cause__ or current.__context__
    return None


def _classify(exc: BaseException) -> ModelDepotError | None:
    if isinstance(exc, OutOfResources | InsufficientStorage):
        return exc
    if isinstance(exc, MemoryError):
        kind = _MEMORY
    elif isinstance(exc, OSError) and exc.errno in SHORTAGES:
        kind = SHORTAGES[exc.errno]
    elif isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == \
            sqlite3.SQLITE_FULL:  # "database or disk is full": SQLite's own word for ENOSPC
        kind = _DISK
    else:
        return None
    error_class, code, message = kind
    return error_class(message, code=code)


def unexpected_error(exc: BaseException, server: str, where: str) -> ModelDepotError:
    """What a server answers for an exception no handler expected: a shortage of descriptors,
    memory or disk as what it is (logged as a warning), anything else as an internal error
    (logged with its traceback) whose message names no path, type or version. The one path
    every server's last-resort handler takes; each renders the error in its own shape."""
    shortage = resource_error(exc)
    if shortage is not None:
        log.warning("%s: %s", where, exc)
        return shortage
    log.error("unhandled error on %s", where, exc_info=exc)
    return ModelDepotError(f"The {server} hit an internal error; its log has the details.")
