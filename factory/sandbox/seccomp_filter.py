"""Kernel backstop: a seccomp filter (via libseccomp + ctypes) that makes
process creation, sockets, signalling other processes and any file-system
write fail with EPERM, whatever the Python-level guards missed.

Best effort: without libseccomp.so.2 (or on a kernel without seccomp) the
child runs without it; install() returns False and the other layers remain.
Loaded by child.py; stdlib-only.
"""
from __future__ import annotations

import ctypes
import errno
import os

_ACT_ALLOW = 0x7FFF0000
_ACT_ERRNO_EPERM = 0x00050000 | errno.EPERM
_CMP_MASKED_EQ = 7  # enum scmp_compare in seccomp.h

_DENY_ALWAYS = (
    # processes and threads (a sandboxed program needs neither)
    "fork", "vfork", "clone", "clone3", "execve", "execveat",
    # network and IPC endpoints
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4",
    # other processes: siblings run as the same uid (nobody)
    "kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
    "pidfd_open", "pidfd_send_signal", "pidfd_getfd", "ptrace",
    "process_vm_readv", "process_vm_writev",
    # file-system mutation
    "creat", "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename",
    "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat",
    "chmod", "fchmod", "fchmodat", "chown", "fchown", "lchown", "fchownat",
    "truncate", "mknod", "mknodat", "utime", "utimes", "utimensat",
    "futimesat", "setxattr", "lsetxattr", "fsetxattr", "removexattr",
    "lremovexattr", "fremovexattr", "chdir", "fchdir", "chroot",
    # flags live in a struct seccomp cannot inspect; glibc falls back to openat
    "openat2",
    # kernel surfaces that bypass or widen the filter
    "io_uring_setup", "io_uring_enter", "io_uring_register", "bpf",
    "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
    "mount", "umount2", "pivot_root", "unshare", "setns", "memfd_create",
    "personality", "seccomp",
)

# open(2) flag bits that mean "may write or create".
_WRITE_BITS = (os.O_WRONLY, os.O_RDWR, os.O_CREAT, os.O_TRUNC, os.O_APPEND)


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


def install() -> bool:
    """Load the filter into this process; True when it is active."""
    try:
        lib = ctypes.CDLL("libseccomp.so.2")
    except OSError:
        return False
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
        ctypes.POINTER(_ArgCmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]

    ctx = lib.seccomp_init(_ACT_ALLOW)
    if not ctx:
        return False
    try:
        def rule(name: str, arg: int | None = None, bit: int = 0) -> None:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr < 0:
                return  # not a syscall on this architecture
            if arg is None:
                rc = lib.seccomp_rule_add_array(ctx, _ACT_ERRNO_EPERM, nr, 0, None)
            else:
                cmp = _ArgCmp(arg, _CMP_MASKED_EQ, bit, bit)
                rc = lib.seccomp_rule_add_array(ctx, _ACT_ERRNO_EPERM, nr, 1, ctypes.byref(cmp))
            if rc != 0:
                raise OSError(-rc, f"seccomp rule for {name} failed")

        for name in _DENY_ALWAYS:
            rule(name)
        for bit in _WRITE_BITS:
            rule("open", 1, bit)    # open(path, flags, mode)
            rule("openat", 2, bit)  # openat(dirfd, path, flags, mode)
        return lib.seccomp_load(ctx) == 0
    finally:
        lib.seccomp_release(ctx)
