"""A small seccomp-BPF filter: no new processes, no exec, no sockets, no ptrace.

Threads stay allowed (Polars and Tokio need them): clone() with CLONE_THREAD passes,
clone3() gets ENOSYS so glibc falls back to clone(), which the filter can inspect.
"""

from __future__ import annotations

import ctypes
import errno
import platform

_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
_RET_ALLOW, _RET_ERRNO = 0x7FFF0000, 0x00050000
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2
_CLONE_THREAD = 0x00010000
_X32_SYSCALL_BIT = 0x40000000

# arch -> (AUDIT_ARCH value, clone nr, denied syscall name -> nr)
_SYSCALLS = {
    "x86_64": (0xC000003E, 56, {
        "fork": 57, "vfork": 58, "execve": 59, "execveat": 322, "ptrace": 101, "process_vm_readv": 310,
        "process_vm_writev": 311, "socket": 41, "socketpair": 53, "unshare": 272, "setns": 308,
        "mount": 165, "bpf": 321, "userfaultfd": 323, "perf_event_open": 298, "keyctl": 250,
        "add_key": 248, "request_key": 249, "kexec_load": 246,
    }),
    "aarch64": (0xC00000B7, 220, {
        "execve": 221, "execveat": 281, "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271,
        "socket": 198, "socketpair": 199, "unshare": 97, "setns": 268, "mount": 40, "bpf": 280,
        "userfaultfd": 282, "perf_event_open": 241, "keyctl": 219, "add_key": 217, "request_key": 218,
        "kexec_load": 104,
    }),
}  # fmt: skip
_CLONE3, _IO_URING = 435, (425, 426, 427)


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def _program(machine: str) -> list[tuple[int, int, int, int]]:
    audit_arch, clone_nr, denied = _SYSCALLS[machine]
    deny_other_arch = (_RET_K, 0, 0, _RET_ERRNO | errno.EPERM)
    prog = [(_LD_W_ABS, 0, 0, 4), (_JEQ_K, 1, 0, audit_arch), deny_other_arch, (_LD_W_ABS, 0, 0, 0)]
    if machine == "x86_64":
        prog += [(_JGE_K, 0, 1, _X32_SYSCALL_BIT), (_RET_K, 0, 0, _RET_ERRNO | errno.EPERM)]
    rules = [(nr, errno.EPERM) for nr in denied.values()]
    rules += [(_CLONE3, errno.ENOSYS)] + [(nr, errno.ENOSYS) for nr in _IO_URING]
    for nr, err in rules:
        prog += [(_JEQ_K, 0, 1, nr), (_RET_K, 0, 0, _RET_ERRNO | err)]
    prog += [(_JEQ_K, 1, 0, clone_nr), (_RET_K, 0, 0, _RET_ALLOW)]
    prog += [(_LD_W_ABS, 0, 0, 16), (_JSET_K, 0, 1, _CLONE_THREAD), (_RET_K, 0, 0, _RET_ALLOW)]
    prog += [(_RET_K, 0, 0, _RET_ERRNO | errno.EPERM)]
    return prog


def install_seccomp_filter() -> str | None:
    """Install the filter on the calling process (irreversible). Returns None or why it failed."""
    machine = platform.machine()
    if machine not in _SYSCALLS:
        return f"seccomp filter not available on {machine}"
    prog = _program(machine)
    filters = (_SockFilter * len(prog))(*[_SockFilter(*ins) for ins in prog])
    fprog = _SockFprog(len(prog), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return f"prctl(NO_NEW_PRIVS) failed: {errno.errorcode.get(ctypes.get_errno(), '?')}"
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        return f"prctl(SECCOMP) failed: {errno.errorcode.get(ctypes.get_errno(), '?')}"
    return None
