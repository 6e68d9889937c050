"""The two children: what to run, how to start them, how to stop them and everything they spawned.

Each child leads its own process group, so:
- Ctrl+C in a terminal reaches only the supervisor, which then stops the children in order;
- the registry's training pool workers share the child's group, and one `killpg` ends them all.

If the supervisor is killed outright, nobody is left to stop anything, so the kernel does it:
on Linux each child gets PR_SET_PDEATHSIG=SIGKILL, which frees its ports at once. Elsewhere (and
for grandchildren, which PR_SET_PDEATHSIG does not reach) `MODELDEPOT_SUPERVISOR_PID` tells the
child whom to watch; see parentwatch.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from app.config import Settings
from app.parentwatch import SUPERVISOR_PID_ENV
from app.prctl import PR_SET_PDEATHSIG, libc_prctl
from app.program import program_command
from app.supervisor.notify import NOTIFY_ENV_VARS

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class ChildSpec:
    role: str  # the sub-command: "registry" or "inference"
    port_setting: str  # the Settings field holding its port
    live_path: str  # answers 200 while the process can serve at all
    ready_path: str  # answers 200 once it can serve what it should
    label: str  # for people: "the registry", "the inference server"
    name: str = ""  # its key in server.json: the role, or "inference-2" for a second worker

    @property
    def key(self) -> str:
        return self.name or self.role

    def port(self, settings: Settings) -> int:
        return int(getattr(settings, self.port_setting))


REGISTRY = ChildSpec("registry", "registry_port", "/api/v1/health", "/api/v1/health", "registry")
INFERENCE = ChildSpec("inference", "inference_port", "/v2/health/live", "/v2/health/ready",
                      "inference server")
CHILDREN = (REGISTRY, INFERENCE)


def child_specs(settings: Settings) -> tuple[ChildSpec, ...]:
    """The children to run: the registry and `inference_workers` inference processes.

    Workers share the inference port (SO_REUSEPORT) and each listens only once ready
    (app/net.py), so a health probe on the port is answered by some ready worker; each worker is
    still started, watched for exit and restarted with backoff on its own."""
    workers = tuple(
        dataclasses.replace(INFERENCE, name=f"inference-{n}", label=f"inference worker {n}")
        for n in range(2, settings.inference_workers + 1)
    )
    first = INFERENCE if not workers else dataclasses.replace(INFERENCE,
                                                               label="inference worker 1")
    return (REGISTRY, first, *workers)


def child_environment(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The inherited environment with the resolved settings on top.

    Stale MODELDEPOT_* variables are dropped so the child sees exactly what the supervisor
    resolved (it must never re-read config.toml), and systemd's notify variables are dropped so
    only the supervisor speaks to systemd.
    """
    base = os.environ if base is None else base
    env = {k: v for k, v in base.items()
           if not k.startswith("MODELDEPOT_") and k not in NOTIFY_ENV_VARS}
    env.update(settings.to_env())
    env[SUPERVISOR_PID_ENV] = str(os.getpid())
    env.setdefault("PYTHONUNBUFFERED", "1")  # log lines reach the journal as they happen
    return env


def _die_with_parent(prctl: Callable[..., int], parent_pid: int) -> None:
    """Runs in the forked child before exec: ask the kernel to kill us when our parent dies."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def spawn(spec: ChildSpec, settings: Settings) -> subprocess.Popen[bytes]:
    """Start one child. Its stdout and stderr are ours: its log lines land where ours do."""
    kwargs: dict[str, object] = {}
    if sys.platform == "win32":
        # Its own console process group, so CTRL_BREAK_EVENT can reach it alone.
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
    else:
        kwargs["process_group"] = 0
        prctl = libc_prctl() if sys.platform.startswith("linux") else None
        if prctl is not None:
            parent = os.getpid()
            # Note: PR_SET_PDEATHSIG fires when the *thread* that forked exits, so children are
            # only ever spawned from the supervisor's main thread.
            kwargs["preexec_fn"] = lambda: _die_with_parent(prctl, parent)
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        program_command(spec.role),
        env=child_environment(settings),
        stdin=subprocess.DEVNULL,
        close_fds=True,
        **kwargs,
    )


def request_stop(process: subprocess.Popen[bytes]) -> None:
    """Ask the child to finish in-flight work and exit."""
    if process.poll() is not None:
        return
    try:
        if sys.platform == "win32":
            # Windows has no SIGTERM to deliver; CTRL_BREAK_EVENT is what a console app can catch.
            os.kill(process.pid, signal.CTRL_BREAK_EVENT)
        else:
            os.kill(process.pid, signal.SIGTERM)
    except OSError:
        pass


def exit_code(process: subprocess.Popen[bytes]) -> int | None:
    """The child's exit code once it has exited, after ending whatever it left in its group.

    The group is killed while the exited child is still a zombie (waitid with WNOWAIT peeks
    without reaping), so its pid, which is the group id, cannot have been handed to anyone else.
    """
    if process.returncode is not None:
        return process.returncode
    if hasattr(os, "waitid"):
        try:
            info = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            info = None
        if info is None:
            return None
        kill_group(process)
    return process.poll()


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child and everything in its process group (pool workers included).

    Never after the child was reaped: its pid, the group id, could then belong to someone else.
    """
    if process.returncode is not None:
        return
    if sys.platform == "win32":
        if process.poll() is None:
            process.kill()
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
