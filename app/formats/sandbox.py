"""Open a client's model file in a throwaway, confined process: never in a server.

Every file a client sends (an upload, a bundle, a mirrored version) is inspected by
`inspect_upload`, which runs app/formats/sandbox_child.py in a new process of this same program
and waits for its report. The child loads the file (a pickle only when trusted), checks it, makes
the first prediction, and turns a pickle into the skops copy the version is served from; the
servers load only skops and ONNX files. What the child can do is limited by app/formats/confine.py;
docs/security.md says what that guarantees.

A process per file costs about a second of imports; in exchange a hostile or broken file can at
worst crash or exhaust that process, which the parent reports as what happened (a signal, the
memory or time limit) while the registry carries on.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from app.errors import (
    InvalidModelFile,
    ModelDepotError,
    ServiceUnavailable,
    TrustRequired,
    Unprocessable,
    UnsafeModel,
)
from app.formats.inspection import Inspection, ServedForm
from app.formats.signature import Signature

log = logging.getLogger(__name__)

Receiver = Callable[[Iterator[bytes]], tuple[Path, str, int]]
_HEADER_MAX = 4 << 20
_CHUNK = 1 << 20
_STDERR_KEPT = 16 << 10
_ERRORS: dict[str, type[ModelDepotError]] = {
    cls.__name__: cls for cls in (InvalidModelFile, UnsafeModel, TrustRequired, Unprocessable)
}
# Secrets a child never needs and must not be handed.
_DROPPED_ENV = ("MODELDEPOT_TOKEN",)


@dataclass(frozen=True)
class SandboxLimits:
    memory_mb: int = 4096
    seconds: float = 120


def child_command() -> list[str]:
    """This same program as the sandbox child (app/cli/__init__.py dispatches it first)."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "sandbox-child"]
    return [sys.executable, "-m", "app", "sandbox-child"]


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONDONTWRITEBYTECODE="1")
    return env


def inspect_upload(
    path: Path,
    *,
    trust: bool,
    receive: Receiver,
    filename: str | None = None,
    declared_signature: Signature | None = None,
    limits: SandboxLimits = SandboxLimits(),
) -> Inspection:
    """Inspect `path` in the sandbox. For a pickle, the skops copy is streamed into `receive`
    (the store's temp files) and returned as `Inspection.served`; the caller owns that temp
    file. Raises the child's finding (InvalidModelFile, UnsafeModel, TrustRequired,
    Unprocessable), InvalidModelFile for a crash or a limit reached, and ServiceUnavailable when
    this machine cannot start the process at all."""
    request = {
        "path": str(path), "trust": trust, "filename": filename,
        "declared_signature": declared_signature.to_dict() if declared_signature else None,
        "memory_bytes": limits.memory_mb << 20, "cpu_seconds": max(1, math.ceil(limits.seconds)),
    }
    try:
        proc = subprocess.Popen(
            child_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=_environment(), close_fds=True,
        )
    except OSError as exc:
        raise ServiceUnavailable(
            f"The registry could not start the process that checks model files: {exc.strerror}. "
            "Try again when the machine is less busy."
        ) from exc
    killed = threading.Event()

    def kill_on_time() -> None:
        killed.set()
        proc.kill()

    timer = threading.Timer(limits.seconds, kill_on_time)
    stderr: list[bytes] = []
    drain = threading.Thread(target=_keep_tail, args=(proc.stderr, stderr), daemon=True)
    timer.start()
    drain.start()
    served: ServedForm | None = None
    try:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the child died at once: its exit status says how
        header = _read_header(proc.stdout)
        if header is not None and header.get("ok") and header.get("served"):
            size = int(header["served"]["size"])
            temp, sha, got = receive(_exactly(proc.stdout, size))
            served = ServedForm(str(header["served"]["format"]), temp, sha, got)
        returncode = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        if served is not None:
            served.temp.unlink(missing_ok=True)
        raise
    finally:
        timer.cancel()
        drain.join(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    try:
        return _result(header, returncode, killed.is_set(),
                       limits, served, b"".join(stderr))
    except BaseException:
        if served is not None:
            served.temp.unlink(missing_ok=True)
        raise


def _keep_tail(stream: IO[bytes] | None, kept: list[bytes]) -> None:
    """Read the child's log to its end (so it never blocks on a full pipe), keeping the tail."""
    if stream is None:
        return
    size = 0
    while chunk := stream.read(4096):
        kept.append(chunk)
        size += len(chunk)
        while size > _STDERR_KEPT and len(kept) > 1:
            size -= len(kept.pop(0))


def _read_header(stdout: IO[bytes]) -> dict[str, Any] | None:
    line = stdout.readline(_HEADER_MAX)
    if not line.endswith(b"\n"):
        return None
    try:
        header = json.loads(line)
    except ValueError:
        return None
    return header if isinstance(header, dict) else None


def _exactly(stream: IO[bytes], size: int) -> Iterator[bytes]:
    left = size
    while left > 0:
        chunk = stream.read(min(_CHUNK, left))
        if not chunk:
            raise InvalidModelFile("The process that checks model files stopped while it was "
                                   "writing the model's skops copy. Nothing was stored.")
        left -= len(chunk)
        yield chunk


def _result(header: dict[str, Any] | None, returncode: int, timed_out: bool,
            limits: SandboxLimits, served: ServedForm | None, stderr: bytes) -> Inspection:
    if timed_out:
        raise InvalidModelFile(
            f"Checking the model file took longer than {limits.seconds:g} s (setting "
            "sandbox_seconds), so it was stopped. Nothing was stored."
        )
    if returncode < 0 or header is None:
        if stderr:
            log.warning("the sandbox child ended with %s; its log ends with: %s",
                        _describe_exit(returncode), stderr[-2000:].decode("utf-8", "replace"))
        if returncode == -signal.SIGXCPU:
            raise InvalidModelFile(
                f"Checking the model file used more than {limits.seconds:g} s of CPU (setting "
                "sandbox_seconds), so it was stopped. Nothing was stored."
            )
        raise InvalidModelFile(
            f"The model file crashed the process that checks it ({_describe_exit(returncode)}): "
            "it is damaged or hostile. Nothing was stored, and the servers were not affected."
        )
    if header.get("ok"):
        inspection = Inspection.from_dict(header["inspection"])
        return Inspection(**{**inspection.__dict__, "served": served})
    kind, message = str(header.get("kind")), str(header.get("message") or "")
    if kind == "MemoryError":
        raise InvalidModelFile(
            f"Opening the model file needs more than {limits.memory_mb} MB of memory (setting "
            "sandbox_memory_mb). Nothing was stored."
        )
    if kind == "Confinement":
        raise ServiceUnavailable(
            f"The registry could not confine the process that checks model files ({message}), "
            "so it did not open the file."
        )
    if kind in _ERRORS:
        raise _ERRORS[kind](message)
    raise InvalidModelFile(
        f"The model file could not be read ({message or 'unexpected error'}); it may be damaged "
        "or need code that is not installed here. Nothing was stored."
    )


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"
