"""The open-file limit: raised to its ceiling at start, and what the servers may spend of it.

A systemd service starts with a soft limit of 1024 descriptors while the hard limit is far higher
(packaging/systemd/modeldepot.service also sets LimitNOFILE). Every connection, temp file, SQLite
handle and pool pipe is a descriptor, so a busy server would run out at the soft limit for no
reason: each server process raises it to the hard limit before it opens anything.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

# Descriptors kept back from connections: the database, log files, uploads' temp files, the
# training pool's pipes, model files being read.
RESERVED_DESCRIPTORS = 256
MAX_CONNECTIONS = 10_000  # past this a loopback model server has bigger problems than accept()


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; (soft, hard) as they are afterwards.

    Platforms without the resource module (Windows) report (-1, -1): nothing to raise there.
    """
    try:
        import resource
    except ImportError:
        return -1, -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft and (hard == resource.RLIM_INFINITY or hard > soft):
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:  # e.g. macOS caps it at OPEN_MAX
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, hard, exc)
    return soft, hard


def open_file_limit() -> int:
    """The current soft limit on open descriptors (a large number where there is none)."""
    try:
        import resource
    except ImportError:
        return 1 << 16
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def connection_limit() -> int:
    """How many connections a server may hold at once: what the open-file limit leaves after the
    reserve, so accept() never fails for want of a descriptor (waitress would retry it in a busy
    loop) and a flood of connections cannot starve the files a request needs."""
    return max(64, min(MAX_CONNECTIONS, open_file_limit() - RESERVED_DESCRIPTORS))
