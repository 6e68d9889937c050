"""Confine the current process before it opens a client's model file: limits and a seccomp filter.

Used only by the sandbox child (app/formats/sandbox_child.py), whether started as a new process
or forked by the zygote (app/formats/zygote.py), which calls `die_with_parent` but never
confines itself. After `confine()`:
- resource limits: address space, CPU seconds, open files, no core dumps, no file growth;
- no new privileges (`PR_SET_NO_NEW_PRIVS`), not dumpable (no ptrace by the same user);
- on Linux x86-64 and aarch64, a seccomp-BPF filter: no `execve`, no new processes (only threads),
  no sockets, no signals to other processes, and no file-system changes: no open for writing, no
  create, rename, unlink, link, chmod, chown, truncate, mount. The child reports over the pipes
  it inherited (stdout), so it needs to write no file at all. Reading files stays allowed (imports
  read .py files); docs/security.md says what that leaves open.

The filter is written by hand (a few dozen BPF instructions through `prctl`) rather than through
libseccomp's Python bindings, which are not on PyPI for every platform we ship and would have to
be bundled into the binary; the rule set is small and fixed.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import signal
import struct
import sys
from dataclasses import dataclass

from app.prctl import (
    PR_SET_DUMPABLE,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
    PR_SET_SECCOMP,
    libc_prctl,
)

SECCOMP_MODE_FILTER = 2

_RET_ALLOW = 0x7FFF0000
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
_ARCH_OFFSET = 4
_NR_OFFSET = 0
_X32_SYSCALL_BIT = 0x40000000

# Flags of open/openat that write, create or truncate: O_WRONLY, O_RDWR, O_CREAT, O_TRUNC,
# O_APPEND (the same bits on x86-64 and aarch64). O_TMPFILE needs O_WRONLY or O_RDWR.
_WRITE_FLAGS = 0o1 | 0o2 | 0o100 | 0o1000 | 0o2000
_CLONE_THREAD = 0x00010000

# System calls refused with EPERM, by name; numbers per architecture below.
_DENIED = (
    "execve", "execveat", "fork", "vfork", "socket", "socketpair", "connect", "bind", "listen",
    "accept", "accept4", "ptrace", "process_vm_writev", "tkill", "pidfd_open",
    "pidfd_send_signal", "creat", "unlink", "unlinkat", "rename", "renameat", "renameat2",
    "mkdir", "mkdirat", "rmdir", "link", "linkat", "symlink", "symlinkat", "chmod", "fchmod",
    "fchmodat", "fchmodat2", "chown", "fchown", "fchownat", "lchown", "truncate", "mknod",
    "mknodat", "mount", "umount2", "pivot_root", "chroot", "setns", "unshare", "bpf",
    "perf_event_open", "io_uring_setup", "userfaultfd", "keyctl", "add_key", "request_key",
    "init_module", "finit_module", "delete_module", "kexec_load", "reboot",
    "name_to_handle_at", "open_by_handle_at", "open_tree", "move_mount", "fsopen", "fsconfig",
    "fsmount", "fspick",
)

_X86_64 = {
    "open": 2, "openat": 257, "openat2": 437, "clone": 56, "clone3": 435, "kill": 62,
    "tgkill": 234,
    "execve": 59, "execveat": 322, "fork": 57, "vfork": 58, "socket": 41, "socketpair": 53,
    "connect": 42, "bind": 49, "listen": 50, "accept": 43, "accept4": 288, "ptrace": 101,
    "process_vm_writev": 311, "tkill": 200, "pidfd_open": 434, "pidfd_send_signal": 424,
    "creat": 85, "unlink": 87, "unlinkat": 263, "rename": 82, "renameat": 264, "renameat2": 316,
    "mkdir": 83, "mkdirat": 258, "rmdir": 84, "link": 86, "linkat": 265, "symlink": 88,
    "symlinkat": 266, "chmod": 90, "fchmod": 91, "fchmodat": 268, "fchmodat2": 452, "chown": 92,
    "fchown": 93, "fchownat": 260, "lchown": 94, "truncate": 76, "mknod": 133, "mknodat": 259,
    "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "setns": 308,
    "unshare": 272, "bpf": 321, "perf_event_open": 298, "io_uring_setup": 425,
    "userfaultfd": 323, "keyctl": 250, "add_key": 248, "request_key": 249, "init_module": 175,
    "finit_module": 313, "delete_module": 176, "kexec_load": 246, "reboot": 169,
    "name_to_handle_at": 303, "open_by_handle_at": 304, "open_tree": 428, "move_mount": 429,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
}
# aarch64 uses the generic table (asm-generic/unistd.h): no open, fork, unlink, ... at all.
_AARCH64 = {
    "openat": 56, "openat2": 437, "clone": 220, "clone3": 435, "kill": 129, "tgkill": 131,
    "execve": 221, "execveat": 281, "socket": 198, "socketpair": 199, "connect": 203,
    "bind": 200, "listen": 201, "accept": 202, "accept4": 242, "ptrace": 117,
    "process_vm_writev": 271, "tkill": 130, "pidfd_open": 434, "pidfd_send_signal": 424,
    "unlinkat": 35, "renameat": 38, "renameat2": 276, "mkdirat": 34, "linkat": 37,
    "symlinkat": 36, "fchmod": 52, "fchmodat": 53, "fchmodat2": 452, "fchown": 55,
    "fchownat": 54, "truncate": 45, "mknodat": 33, "mount": 40, "umount2": 39, "pivot_root": 41,
    "chroot": 51, "setns": 268, "unshare": 97, "bpf": 280, "perf_event_open": 241,
    "io_uring_setup": 425, "userfaultfd": 282, "keyctl": 219, "add_key": 217,
    "request_key": 218, "init_module": 105, "finit_module": 273, "delete_module": 106,
    "kexec_load": 104, "reboot": 142, "name_to_handle_at": 264, "open_by_handle_at": 265,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
    "fspick": 433,
}
_ARCHES = {"x86_64": (0xC000003E, _X86_64), "aarch64": (0xC00000B7, _AARCH64)}


@dataclass(frozen=True)
class Limits:
    memory_bytes: int
    cpu_seconds: int
    open_files: int = 64


def _arg_offset(index: int) -> int:
    """Offset of the low 32 bits of syscall argument `index` in struct seccomp_data (both of our
    architectures are little-endian)."""
    return 16 + 8 * index


class _Program:
    """A tiny BPF assembler: instructions with symbolic jump targets, resolved at the end."""

    def __init__(self) -> None:
        self.code: list[tuple[int, object, object, int]] = []
        self.labels: dict[str, int] = {}

    def op(self, code: int, k: int, jt: object = 0, jf: object = 0) -> None:
        self.code.append((code, jt, jf, k))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def assemble(self) -> bytes:
        out = []
        for index, (code, jt, jf, k) in enumerate(self.code):
            offsets = []
            for target in (jt, jf):
                offset = target if isinstance(target, int) else self.labels[str(target)] - index - 1
                if not 0 <= offset <= 255:
                    raise ValueError("seccomp jump out of range")
                offsets.append(offset)
            out.append(struct.pack("=HBBI", code, offsets[0], offsets[1], k & 0xFFFFFFFF))
        return b"".join(out)


def build_filter(arch: str, pid: int) -> bytes:
    """The BPF program for `arch` (a platform.machine() name); `pid` may still be signalled."""
    audit_arch, numbers = _ARCHES[arch]
    prog = _Program()
    prog.op(_LD_W_ABS, _ARCH_OFFSET)
    prog.op(_JEQ_K, audit_arch, 1, 0)
    prog.op(_RET_K, _RET_KILL_PROCESS)  # another ABI (i386, x32 through int 0x80): no rules apply
    prog.op(_LD_W_ABS, _NR_OFFSET)
    prog.op(_JGE_K, _X32_SYSCALL_BIT, "eperm", 0)
    for name in _DENIED:
        if name in numbers:
            prog.op(_JEQ_K, numbers[name], "eperm", 0)
    for name, flags_arg in (("openat", 2), ("open", 1)):
        if name in numbers:
            prog.op(_JEQ_K, numbers[name], 0, f"after_{name}")
            prog.op(_LD_W_ABS, _arg_offset(flags_arg))
            prog.op(_JSET_K, _WRITE_FLAGS, "eacces", "allow")
            prog.label(f"after_{name}")
    prog.op(_JEQ_K, numbers["openat2"], "enosys", 0)  # flags behind a pointer: make libc fall back
    prog.op(_JEQ_K, numbers["clone3"], "enosys", 0)  # flags behind a pointer: glibc falls back
    prog.op(_JEQ_K, numbers["clone"], 0, "after_clone")
    prog.op(_LD_W_ABS, _arg_offset(0))
    prog.op(_JSET_K, _CLONE_THREAD, "allow", "eperm")  # threads yes, processes no
    prog.label("after_clone")
    for name in ("kill", "tgkill"):
        prog.op(_JEQ_K, numbers[name], 0, f"after_{name}")
        prog.op(_LD_W_ABS, _arg_offset(0))
        prog.op(_JEQ_K, pid, "allow", "eperm")  # only this process may be signalled
        prog.label(f"after_{name}")
    prog.label("allow")
    prog.op(_RET_K, _RET_ALLOW)
    prog.label("eperm")
    prog.op(_RET_K, _RET_ERRNO | errno.EPERM)
    prog.label("eacces")
    prog.op(_RET_K, _RET_ERRNO | errno.EACCES)
    prog.label("enosys")
    prog.op(_RET_K, _RET_ERRNO | errno.ENOSYS)
    return prog.assemble()


def _prctl(option: int, *args: object) -> None:
    prctl = libc_prctl()
    if prctl is None:
        raise OSError(errno.ENOSYS, "prctl is not available")
    padded = (list(args) + [0, 0, 0, 0])[:4]
    if prctl(option, *padded) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}) failed: {os.strerror(err)}")


def seccomp_supported() -> bool:
    return sys.platform == "linux" and platform.machine() in _ARCHES


def _set_filter(program: bytes) -> None:
    buffer = ctypes.create_string_buffer(program, len(program))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    _prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(
        SockFprog(len(program) // 8, ctypes.addressof(buffer))))


def set_limits(limits: Limits) -> None:
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past RLIMIT_FSIZE fails with EFBIG
    for which, value in (
        (resource.RLIMIT_AS, limits.memory_bytes),
        (resource.RLIMIT_CPU, limits.cpu_seconds),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_FSIZE, 0),
    ):
        _soft, hard = resource.getrlimit(which)
        capped = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (capped, capped))


def confine(limits: Limits) -> bool:
    """Apply the limits and, where supported, the filter; True when the filter is in place."""
    if sys.platform == "win32":  # pragma: no cover - no rlimits, no seccomp
        return False
    libc_prctl()  # resolved before the memory limit applies
    set_limits(limits)
    if sys.platform != "linux":  # pragma: no cover - macOS: limits only
        return False
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # a registry that dies takes its checks along
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    _prctl(PR_SET_DUMPABLE, 0)
    if not seccomp_supported():
        return False
    if not filter_installs():
        print("modeldepot sandbox: the seccomp filter cannot work here (an emulator?); the "
              "checking process runs with its resource limits only", file=sys.stderr)
        return False
    _set_filter(build_filter(platform.machine(), os.getpid()))
    return True


def die_with_parent(parent: int) -> bool:
    """Be killed when `parent` ends (Linux; elsewhere the sandbox relies on its pipes and
    socket closing). False when `parent` has ended already, before this could take effect."""
    if sys.platform == "linux":
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    return os.getppid() == parent


def filter_installs() -> bool:
    """Try the filter in a forked probe first. Under a user-mode emulator (qemu-user running an
    aarch64 build on x86-64) the kernel sees the emulator's architecture, so the filter would
    kill the process at its next system call (and Debian's qemu 7.2 refuses PR_SET_SECCOMP with
    EINVAL); there the child keeps its other limits only."""
    if not seccomp_supported():
        return False
    pid = os.fork()
    if pid == 0:  # the probe: install, make a system call, report by exit status
        try:
            _set_filter(build_filter(platform.machine(), os.getpid()))
            os.getppid()
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def confinement() -> tuple[bool, str]:
    """Whether the process that checks uploads gets the seccomp filter here, and a line saying
    so for the registry's log and `modeldepot doctor`: under emulation it cannot, and an
    operator must be able to see that. Forks a probe (filter_installs)."""
    if filter_installs():
        return True, f"seccomp filter ({platform.machine()}) and resource limits"
    if sys.platform == "linux" and seccomp_supported():
        why = "it could not be installed here (under emulation qemu-user refuses it)"
    else:
        why = f"no seccomp filter for {sys.platform} {platform.machine()}"
    return False, (f"resource limits only, WITHOUT the seccomp filter: {why}; "
                   "docs/security.md says what that leaves open")
