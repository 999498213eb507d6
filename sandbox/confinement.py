"""OS-level confinement: network namespace, rlimits, an empty root, privilege drop, seccomp."""

from __future__ import annotations

import ctypes
import errno
import math
import os
import resource
import signal
import tempfile
from dataclasses import dataclass

from sandbox.seccomp import install_seccomp_filter

_CLONE_NEWNET, _CLONE_NEWUSER = 0x40000000, 0x10000000
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE = 1, 4
NOBODY = 65534
MAX_OPEN_FILES = 256


@dataclass(frozen=True)
class RunLimits:
    """Limits applied to one run process (derived from SandboxLimits)."""

    cpu_seconds: float
    memory_bytes: int
    file_bytes: int


def enter_network_namespace() -> str | None:
    """Move this process into a fresh, empty network namespace. Returns None or why not."""
    libc = ctypes.CDLL(None, use_errno=True)
    flags = _CLONE_NEWNET if os.geteuid() == 0 else _CLONE_NEWUSER | _CLONE_NEWNET
    if libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        return f"unshare(CLONE_NEWNET) failed: {errno.errorcode.get(err, err)} ({os.strerror(err)})"
    return None


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent exits."""
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def address_space_bytes() -> int:
    """Current virtual memory size (VmSize) of this process."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def enter_empty_root() -> str | None:
    """chroot into a fresh directory that is already deleted: no file is reachable by path.

    Call it after everything the process needs is imported and its input is in memory,
    and before dropping privileges (chroot needs root). Returns None or why not.
    """
    if os.geteuid() != 0:
        return "not root: no empty root (chroot); the run process can open any file its user can"
    try:
        path = tempfile.mkdtemp(prefix="afep-run-")
        os.chmod(path, 0o555)  # an empty listing for `nobody`, rather than "permission denied"
        try:
            os.chdir(path)
        finally:
            os.rmdir(path)  # nothing can ever be created in it
        os.chroot(".")
        os.chdir("/")
    except OSError as exc:
        os.chdir("/")
        return f"chroot into an empty directory failed: {exc.strerror or exc}"
    return None


def confine_process(limits: RunLimits) -> list[str]:
    """Confine the calling (single-threaded, freshly forked) process. Returns degradations."""
    degraded: list[str] = []
    cpu = max(1, math.ceil(limits.cpu_seconds))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU, then SIGKILL
    vm = address_space_bytes() + limits.memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (vm, vm))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    resource.setrlimit(resource.RLIMIT_NOFILE, (MAX_OPEN_FILES, MAX_OPEN_FILES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    problem = enter_empty_root()
    if problem:
        degraded.append(problem)
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    else:
        degraded.append("not root: privileges not dropped")
    ctypes.CDLL(None).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    problem = install_seccomp_filter()
    if problem:
        degraded.append(problem)
    return degraded
