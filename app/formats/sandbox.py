"""Open a client's model file in a throwaway, confined process: never in a server.

Every file a client sends (an upload, a bundle, a mirrored version) is inspected by
`inspect_upload`, which runs app/formats/sandbox_child.py in a child process and waits for its
report. The child loads the file (a pickle only when trusted), checks it, makes the first
prediction, and turns a pickle into the skops copy the version is served from; the servers load
only skops and ONNX files. What the child can do is limited by app/formats/confine.py;
docs/security.md says what that guarantees.

The child is forked by the zygote (app/formats/zygote.py, driven by zygote_client.py), which has
imported the model libraries once, so a check costs tens of milliseconds instead of a second and
a half of imports. If the zygote cannot be started or dies mid-request, that request is checked
in a new process of this program (`sandbox-child`), as before the zygote existed: an upload
never fails because of the zygote. Either way a hostile or broken file can at worst crash or
exhaust its own child, which the parent reports as what happened (a signal, the memory or time
limit) while the registry carries on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from app.errors import (
    InvalidModelFile,
    ModelDepotError,
    ServiceUnavailable,
    TrustRequired,
    Unprocessable,
    UnsafeModel,
)
from app.formats.inspection import Inspection, ServedForm
from app.formats.sandbox_launch import sandbox_environment
from app.formats.signature import Signature
from app.formats.zygote_client import ZygoteLost, shared_zygote, zygote_supported
from app.program import program_command

log = logging.getLogger(__name__)

Receiver = Callable[[Iterator[bytes]], tuple[Path, str, int]]
_HEADER_MAX = 4 << 20
_CHUNK = 1 << 20
_STDERR_KEPT = 16 << 10
_ERRORS: dict[str, type[ModelDepotError]] = {
    cls.__name__: cls for cls in (InvalidModelFile, UnsafeModel, TrustRequired, Unprocessable)
}


@dataclass(frozen=True)
class SandboxLimits:
    memory_mb: int = 4096
    seconds: float = 120


class Child(Protocol):
    """A running sandbox child: a new process, or one the zygote forked
    (app/formats/zygote_client.py's ZygoteChild)."""

    @property
    def stdin(self) -> IO[bytes]: ...
    @property
    def stdout(self) -> IO[bytes]: ...
    @property
    def stderr(self) -> IO[bytes]: ...
    def wait(self) -> int: ...
    def kill(self) -> None: ...


@dataclass
class NewProcess:
    """The sandbox child as a new process of this program (`sandbox-child`)."""

    process: subprocess.Popen[bytes]
    stdin: IO[bytes]
    stdout: IO[bytes]
    stderr: IO[bytes]

    @classmethod
    def start(cls) -> NewProcess:
        process = subprocess.Popen(
            program_command("sandbox-child"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=sandbox_environment(), close_fds=True,
        )
        assert process.stdin and process.stdout and process.stderr
        return cls(process, process.stdin, process.stdout, process.stderr)

    def wait(self) -> int:
        return self.process.wait()

    def kill(self) -> None:
        self.process.kill()


def _forked_child() -> Child:
    return shared_zygote().spawn()


def inspect_upload(
    path: Path,
    *,
    trust: bool,
    receive: Receiver,
    filename: str | None = None,
    declared_signature: Signature | None = None,
    limits: SandboxLimits = SandboxLimits(),
    via_zygote: bool = True,
) -> Inspection:
    """Inspect `path` in the sandbox. For a pickle, the skops copy is streamed into `receive`
    (the store's temp files) and returned as `Inspection.served`; the caller owns that temp
    file. Raises the child's finding (InvalidModelFile, UnsafeModel, TrustRequired,
    Unprocessable), InvalidModelFile for a crash or a limit reached, and ServiceUnavailable when
    this machine cannot start the process at all. `via_zygote=False` always starts a new
    process (the benchmark compares both)."""
    request = {
        "path": str(path), "trust": trust, "filename": filename,
        "declared_signature": declared_signature.to_dict() if declared_signature else None,
        "memory_bytes": limits.memory_mb << 20, "cpu_seconds": max(1, math.ceil(limits.seconds)),
    }
    if via_zygote and zygote_supported():
        try:
            return _inspect(request, _forked_child, limits, receive)
        except ZygoteLost as exc:
            log.warning("the sandbox zygote failed (%s); this file is checked in a new process",
                        exc)
    return _inspect(request, NewProcess.start, limits, receive)


def _inspect(request: dict[str, Any], start: Callable[[], Child], limits: SandboxLimits,
             receive: Receiver) -> Inspection:
    try:
        child = start()
    except OSError as exc:
        raise ServiceUnavailable(
            f"The registry could not start the process that checks model files: {exc.strerror}. "
            "Try again when the machine is less busy."
        ) from exc
    killed = threading.Event()

    def kill_on_time() -> None:
        killed.set()
        child.kill()

    timer = threading.Timer(limits.seconds, kill_on_time)
    stderr: list[bytes] = []
    drain = threading.Thread(target=_keep_tail, args=(child.stderr, stderr), daemon=True)
    timer.start()
    drain.start()
    served: ServedForm | None = None
    try:
        try:
            child.stdin.write(json.dumps(request).encode() + b"\n")
            child.stdin.close()
        except BrokenPipeError:
            pass  # the child died at once: its exit status says how
        header = _read_header(child.stdout)
        if header is not None and header.get("ok") and header.get("served"):
            size = int(header["served"]["size"])
            temp, sha, got = receive(_exactly(child.stdout, size))
            served = ServedForm(str(header["served"]["format"]), temp, sha, got)
        returncode = child.wait()
    except BaseException:
        child.kill()
        with contextlib.suppress(ZygoteLost):
            child.wait()
        if served is not None:
            served.temp.unlink(missing_ok=True)
        raise
    finally:
        timer.cancel()
        drain.join(timeout=5)
        for stream in (child.stdin, child.stdout, child.stderr):
            with contextlib.suppress(OSError):
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
