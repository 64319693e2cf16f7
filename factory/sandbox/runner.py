"""Parent side of the sandbox: spawn the child, enforce the wall clock and the
output cap, reap everything, and map the outcome to a SandboxResult.

Untrusted source is never parsed or executed in this process.
"""
from __future__ import annotations

import hmac
import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .limits import SandboxLimits, SandboxResult

CHILD = Path(__file__).with_name("child.py")
NOBODY = 65534
MAX_SOURCE_CHARS = 200_000  # TinyGSM programs are < 2 kB; bounds job.json size
_STATUSES = frozenset({"ok", "error", "timeout", "limit", "denied"})
LAYERS = frozenset({"ast", "builtins", "audit"})  # switchable only for tests

_probe_lock = threading.Lock()
_unshare_prefix: list[str] | None = None


def _net_prefix() -> list[str]:
    """`unshare -n` puts the child in a fresh network namespace (only a down
    loopback: no route anywhere). It needs CAP_SYS_ADMIN, i.e. root outside a
    locked-down container; probed once per process. Without it, sockets are
    still refused by the audit hook, just without the kernel backstop."""
    global _unshare_prefix
    with _probe_lock:
        if _unshare_prefix is None:
            exe = shutil.which("unshare")
            ok = False
            if exe:
                try:
                    ok = subprocess.run(
                        [exe, "-n", "--", sys.executable, "-I", "-S", "-c", ""],
                        env={}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL, timeout=10).returncode == 0
                except (OSError, subprocess.SubprocessError):
                    ok = False
            _unshare_prefix = [exe, "-n", "--"] if ok else []
        return _unshare_prefix


def network_isolated() -> bool:
    return bool(_net_prefix())


def run_program(source: str, entry: str = "simple_math_problem",
                limits: SandboxLimits = SandboxLimits()) -> SandboxResult:
    """Run `source` in a locked-down child process and call `entry()`."""
    return _run(source, entry, limits)


def _run(source: str, entry: str, limits: SandboxLimits,
         disable_layers: frozenset[str] = frozenset()) -> SandboxResult:
    if not isinstance(source, str):
        raise TypeError("source must be a str")
    if not isinstance(entry, str) or not entry.isidentifier():
        raise ValueError(f"entry must be an identifier, got {entry!r}")
    if not disable_layers <= LAYERS:
        raise ValueError(f"unknown layers: {sorted(disable_layers - LAYERS)}")
    if len(source) > MAX_SOURCE_CHARS:
        return SandboxResult("limit", None,
                             f"program longer than {MAX_SOURCE_CHARS} characters", "", 0.0)
    workdir = tempfile.mkdtemp(prefix="factory-sandbox-")
    try:
        return _run_in(workdir, source, entry, limits, disable_layers)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run_in(workdir: str, source: str, entry: str, limits: SandboxLimits,
            disable_layers: frozenset[str]) -> SandboxResult:
    nonce = secrets.token_hex(16)
    job = {
        "nonce": nonce, "source": source, "entry": entry,
        "cpu_seconds": limits.cpu_seconds, "memory_mb": limits.memory_mb,
        "output_bytes": limits.output_bytes,
        "allowed_imports": sorted(limits.allowed_imports),
        "disable_layers": sorted(disable_layers),
    }
    job_path = os.path.join(workdir, "job.json")
    fd = os.open(job_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(job, fh)
    if os.geteuid() == 0:
        # The child drops to nobody; job.json stays root-only and is removed
        # by the child before dropping.
        os.chown(workdir, NOBODY, NOBODY)

    cmd = _net_prefix() + [sys.executable, "-I", "-S", "-B", str(CHILD)]
    start = time.monotonic()
    r_fd, w_fd = os.pipe()
    try:
        proc = subprocess.Popen(
            cmd + [str(w_fd)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, cwd=workdir, env={}, pass_fds=(w_fd,),
            start_new_session=True)  # own process group: one killpg gets everything
    except BaseException:
        os.close(r_fd)
        raise
    finally:
        os.close(w_fd)
    try:
        outcome, out, report = _supervise(proc, r_fd, limits, start + limits.wall_seconds)
    finally:
        _kill_group(proc.pid)
        rc, cpu_used = _reap(proc)
        os.close(r_fd)
        proc.stdout.close()
    seconds = time.monotonic() - start
    stdout = bytes(out[:limits.output_bytes]).decode("utf-8", "replace")

    def result(status, reason, value=None):
        return SandboxResult(status, value, reason, stdout, seconds)

    if outcome == "timeout":
        return result("timeout", f"wall time limit {limits.wall_seconds}s exceeded")
    if outcome == "output":
        return result("limit", f"output limit {limits.output_bytes} bytes exceeded")
    if report:
        parsed = _parse_report(report, nonce)
        if parsed is None:
            return result("denied", "sandbox report failed verification")
        status, value, reason = parsed
        return result(status, reason, value)
    if rc == -signal.SIGXCPU or (rc == -signal.SIGKILL and cpu_used >= limits.cpu_seconds):
        return result("limit", f"cpu time limit {limits.cpu_seconds}s exceeded")
    if rc == -signal.SIGXFSZ:
        return result("limit", "file size limit exceeded")
    if rc < 0:
        return result("error", f"sandbox process killed by {signal.Signals(-rc).name}")
    tail = stdout.strip().splitlines()[-1:] or [""]
    return result("error", f"sandbox process exited with status {rc} {tail[0][:200]}".strip())


def _supervise(proc: subprocess.Popen, r_fd: int, limits: SandboxLimits,
               deadline: float) -> tuple[str, bytearray, bytes]:
    """Pump stdout (capped) and the report pipe until both close and the child
    exits. Returns (outcome, stdout bytes, report bytes); outcome is "exited",
    "timeout" or "output"."""
    cap = limits.output_bytes
    # The report holds a value of <= cap characters, which JSON escaping can
    # grow at most 6x ("\\u1234"), plus a reason of <= 500 characters.
    report_cap = 6 * cap + 8192
    out, report = bytearray(), bytearray()
    out_fd = proc.stdout.fileno()
    with selectors.DefaultSelector() as sel:
        sel.register(out_fd, selectors.EVENT_READ)
        sel.register(r_fd, selectors.EVENT_READ)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout", out, bytes(report)
            for key, _ in sel.select(left):
                if key.fd == out_fd:
                    # Never read more than cap + 1 bytes in total.
                    chunk = os.read(out_fd, min(65536, cap + 1 - len(out)))
                    out += chunk
                    if len(out) > cap:
                        return "output", out, bytes(report)
                else:
                    chunk = os.read(r_fd, 65536)
                    report += chunk
                    if len(report) > report_cap:
                        return "exited", out, b""  # garbage: treated as no report
                if not chunk:
                    sel.unregister(key.fd)
    # Both pipes closed; the child is exiting. Wait without reaping (WNOWAIT)
    # so its pid, hence the process-group id, cannot be reused before killpg.
    while time.monotonic() < deadline:
        try:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                return "exited", out, bytes(report)
        except ChildProcessError:
            return "exited", out, bytes(report)
        time.sleep(0.002)
    return "timeout", out, bytes(report)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(proc: subprocess.Popen) -> tuple[int, float]:
    """Reap the child; return (returncode, cpu seconds it used)."""
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except ChildProcessError:
        return proc.wait(), 0.0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime


def _parse_report(raw: bytes, nonce: str) -> tuple[str, str | None, str] | None:
    try:
        data = json.loads(raw.split(b"\n", 1)[0])
    except ValueError:
        return None
    if not isinstance(data, dict) or not hmac.compare_digest(
            str(data.get("nonce", "")).encode(), nonce.encode()):
        return None
    status, value, reason = data.get("status"), data.get("value"), data.get("reason", "")
    if status not in _STATUSES or not isinstance(reason, str) or not (
            value is None or isinstance(value, str)):
        return None
    return status, value, reason
