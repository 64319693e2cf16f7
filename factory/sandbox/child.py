"""Sandbox child: runs ONE untrusted program and reports on a private fd.

Started by runner.py as `[unshare -n] python -I -S -B child.py RESULT_FD`
in a fresh temporary directory holding job.json, with an empty environment.
Order matters: read job -> pre-import (the stdlib may be unreadable once we
are nobody) -> rlimits -> drop privileges -> seccomp -> AST check -> audit
hook -> exec. Every exit goes through os._exit: no interpreter finalisation
runs, and finalisation clears audit hooks before a leftover __del__ would run.
"""
import ast
import json
import math
import os
import resource
import sys
from decimal import Decimal
from fractions import Fraction

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guard  # noqa: E402
import policy  # noqa: E402
import seccomp_filter  # noqa: E402  (imports ctypes while still root)
del sys.path[0]

RESULT_FD = 3
NOBODY = 65534  # uid/gid of `nobody` on Debian


class ValueTooLong(Exception):
    pass


def _encode(nonce: str, status, value, reason) -> bytes:
    line = {"nonce": nonce, "status": status, "value": value, "reason": reason[:500]}
    return (json.dumps(line) + "\n").encode()


def _sealed_lines(nonce: str, memory_mb: int):
    """A generator that turns (status, value, reason) into the signed result line.

    The nonce lives only in this suspended frame's locals. Anything stored on an object or
    in a closure cell is reachable from the program by a format-string walk
    ("{0.__globals__[__builtins__][__import__].__closure__[1].cell_contents...}".format(f)
    read the old Reporter.nonce, issue 23 C); a frame is reachable only through gi_frame,
    tb_frame or sys._getframe, which the audit hook denies."""
    # Pre-encoded so it can still be sent when the heap is exhausted.
    oom_line = _encode(nonce, "limit", None, f"memory limit {memory_mb} MB exceeded")
    request = yield
    while True:
        try:
            data = _encode(nonce, *request)
        except BaseException:  # no memory, or no request (see Reporter.send)
            data = oom_line
        request = yield data


class Reporter:
    """Writes exactly one JSON line carrying the parent's nonce, then exits.

    The parent trusts only this fd, never stdout, so prints cannot forge a
    result; the nonce additionally ties the line to this job."""

    def __init__(self, nonce: str, memory_mb: int):
        self._lines = _sealed_lines(nonce, memory_mb)
        next(self._lines)

    def send(self, status, value=None, reason=""):
        try:
            sys.stdout.flush()
        except BaseException:
            pass
        try:
            try:
                data = self._lines.send((status, value, reason))
            except BaseException:  # the tuple itself could not be built
                data = self._lines.send(None)
            while data:
                data = data[os.write(RESULT_FD, data):]
        finally:
            os._exit(0)


def set_rlimits(job) -> None:
    cpu = max(1, math.ceil(job["cpu_seconds"]))  # RLIMIT_CPU has 1 s granularity
    mem = job["memory_mb"] * 1024 * 1024
    for res, soft, hard in (
        (resource.RLIMIT_CPU, cpu, cpu + 1),   # SIGXCPU at soft, SIGKILL at hard
        (resource.RLIMIT_AS, mem, mem),
        (resource.RLIMIT_FSIZE, 0, 0),         # stdout and the result fd are pipes,
                                               # which FSIZE does not cover
        (resource.RLIMIT_NOFILE, 16, 16),      # 0-3 plus a few for lazy imports
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_NPROC, 0, 0),         # enforced once we are not root
        (resource.RLIMIT_MEMLOCK, 0, 0),
        (resource.RLIMIT_MSGQUEUE, 0, 0),
    ):
        resource.setrlimit(res, (soft, hard))


def drop_privileges() -> None:
    # Root ignores RLIMIT_NPROC and file permissions; nobody does not.
    if os.geteuid() != 0:
        return  # unprivileged caller: nothing to drop, rlimits still apply
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise RuntimeError("privilege drop did not stick")


def forget_ctypes() -> None:
    """Unlist ctypes (needed only for the seccomp filter) so that any later
    `import ctypes` runs the import machinery and meets the audit hook."""
    for name in list(sys.modules):
        if name in ("ctypes", "_ctypes", "seccomp_filter") or name.startswith("ctypes."):
            del sys.modules[name]


def render(value, cap: int) -> str:
    # Exact types only: str() is their canonical text (42, 1/3, 1.10).
    if type(value) in (bool, int, str, Fraction, Decimal):
        text = str(value)
    else:
        text = repr(value)  # floats, complex, containers, None, user objects
    if len(text) > cap:
        raise ValueTooLong(f"returned value longer than {cap} characters")
    return text


def describe(exc: BaseException) -> str:
    try:
        msg = str(exc)
    except BaseException:
        msg = ""
    name = type(exc).__name__
    return f"{name}: {msg}" if msg else name


def run(job, reporter: Reporter) -> None:
    disabled = frozenset(job["disable_layers"])
    allowed = frozenset(job["allowed_imports"])
    guard.preimport(allowed)
    read_roots = tuple(os.path.realpath(p) for p in sys.path if p)
    sys.stdout.reconfigure(encoding="utf-8", errors="backslashreplace")
    # The parent passes env={}, but Python adds LC_CTYPE (locale coercion); a format-string
    # walk reaches os.environ through any real module's globals, so leave nothing in it.
    os.environ.clear()
    set_rlimits(job)
    drop_privileges()
    seccomp_filter.install()
    forget_ctypes()

    deny = lambda reason: reporter.send("denied", None, reason)  # noqa: E731
    try:
        tree = ast.parse(job["source"], "<program>")
    except SyntaxError as exc:
        reporter.send("error", None, f"SyntaxError: {exc.msg} (line {exc.lineno})")
    except (MemoryError, RecursionError) as exc:
        reporter.send("error", None, f"program too deeply nested: {describe(exc)}")
    if "ast" not in disabled:
        try:
            policy.check_source(tree, allowed)
        except policy.PolicyViolation as exc:
            deny(str(exc))
    code = compile(tree, "<program>", "exec")
    guarded_import = guard.make_guarded_import(deny, allowed)
    if "builtins" in disabled:
        namespace = {"__builtins__": __builtins__, "__name__": "__sandbox__"}
    else:
        table = guard.safe_builtins(policy.SAFE_BUILTIN_NAMES, guarded_import)
        namespace = {"__builtins__": table, "__name__": "__sandbox__"}
    if "audit" not in disabled:
        sys.addaudithook(guard.make_audit_hook(deny, os.getcwd(), read_roots))

    entry = job["entry"]
    try:
        exec(code, namespace)
        func = namespace.get(entry)
        if func is None:
            reporter.send("error", None, f"no function {entry!r} defined")
        if not callable(func):
            reporter.send("error", None, f"{entry!r} is not a function")
        text = render(func(), job["output_bytes"])
    except MemoryError:
        reporter.send("limit", None, f"memory limit {job['memory_mb']} MB exceeded")
    except ValueTooLong as exc:
        reporter.send("limit", None, str(exc))
    except BaseException as exc:  # SystemExit and KeyboardInterrupt included
        reporter.send("error", None, describe(exc))
    reporter.send("ok", text, "")


def main() -> None:
    fd = int(sys.argv[1])
    if fd != RESULT_FD:
        os.dup2(fd, RESULT_FD)
        os.close(fd)
    with open("job.json", encoding="utf-8") as fh:
        job = json.load(fh)
    os.unlink("job.json")  # the program may read its cwd; not the nonce
    reporter = Reporter(job.pop("nonce"), job["memory_mb"])  # from here on only in the sealed frame
    try:
        run(job, reporter)
    except MemoryError:
        reporter.send("limit", None, f"memory limit {job['memory_mb']} MB exceeded")
    except BaseException as exc:
        reporter.send("error", None, f"sandbox setup failed: {describe(exc)}")


if __name__ == "__main__":
    try:
        main()
    finally:
        os._exit(70)  # only reached if reporting itself failed
