"""The Ray processes a run starts end with it, however it ends (issue 23 H).

`ray.init()` without an address starts a local Ray (GCS, raylet, monitor, dashboard, log
monitor) as children of the driver; the raylet starts the workers and two agents
(DashboardAgent, RuntimeEnvAgent). After `kill -9` of the driver the raylet and GCS die
with it (Ray sets them to die with their parent) but the agents, and for a moment the
workers, are re-parented to PID 1 and live on; after a normal `ray.shutdown()` the agents
were still alive a second later.

So the driver starts this watchdog once its Ray is up, with a pipe on its stdin. Every
POLL_S it records the session's processes: the driver's children whose command line names
the session directory, and all their descendants (workers and agents descend from the
raylet), each by PID and start time (a PID reused later is never killed). The pipe's end
(EOF: the driver closed it after ray.shutdown(), or the kernel closed it when the driver
died) is the signal: it kills every recorded process still alive, and any process whose
RAY_RAYLET_PID is a recorded raylet, waits until they are gone and exits. Nothing else is
touched: never the driver, never a child of the driver that is not Ray's (a sandbox, a
model server), never a cluster the driver only joined (its processes are not the
driver's descendants).

Run as `python -I factory/executors/reaper.py DRIVER_PID SESSION_NAME` (start() does).
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

POLL_S = 0.5
GONE_ROUNDS = 100  # x 0.05 s: how long it waits for the killed to go before giving up


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(parent pid, start time, state) of a live process, None when gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[19]), fields[0]


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _raylet_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"RAY_RAYLET_PID="):
            try:
                return int(item.split(b"=", 1)[1])
            except ValueError:
                return None
    return None


def _processes() -> dict[int, tuple[int, int, str]]:
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None:
                found[int(name)] = st
    return found


class Session:
    def __init__(self, driver: int, session: str):
        self.driver, self.session, self.me = driver, session, os.getpid()
        self.known: dict[int, int] = {}  # pid -> start time
        self.raylets: set[int] = set()

    def record(self) -> None:
        procs = _processes()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in procs.items():
            children.setdefault(ppid, []).append(pid)
        stack = [pid for pid in children.get(self.driver, ()) if pid != self.me and self.session in _cmdline(pid)]
        stack += [pid for pid, start in self.known.items() if pid in procs and procs[pid][1] == start]  # re-parented
        seen: set[int] = set()
        while stack:
            pid = stack.pop()
            if pid in seen or pid in (self.driver, self.me) or pid not in procs:
                continue
            seen.add(pid)
            if self.known.get(pid) != procs[pid][1]:
                self.known[pid] = procs[pid][1]
                if os.path.basename(_cmdline(pid).split(" ", 1)[0]) == "raylet":
                    self.raylets.add(pid)
            stack.extend(children.get(pid, ()))

    def alive(self) -> list[int]:
        out = []
        for pid, (_, start, state) in _processes().items():
            if pid in (self.driver, self.me) or state == "Z":
                continue
            if self.known.get(pid) == start or (self.raylets and _raylet_of(pid) in self.raylets):
                self.known[pid] = start
                out.append(pid)
        return out

    def reap(self) -> None:
        for _ in range(GONE_ROUNDS):
            self.record()
            left = self.alive()
            if not left:
                return
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.05)


def main(argv: list[str]) -> int:
    watch = Session(int(argv[0]), argv[1])
    watch.record()
    print("ready", flush=True)  # the session's processes so far are recorded
    while True:
        ready, _, _ = select.select([sys.stdin.buffer], [], [], POLL_S)
        if ready and not os.read(sys.stdin.fileno(), 4096):
            break  # EOF: the driver closed the pipe or died
        watch.record()
    watch.reap()
    return 0


def start(session: str) -> subprocess.Popen:
    """The watchdog for this process's Ray session, returned once it has recorded the
    session's processes: run as a plain script (stdlib only, so it starts in a blink), in
    its own session (a signal to the driver's process group does not end it first)."""
    proc = subprocess.Popen([sys.executable, "-I", os.path.abspath(__file__), str(os.getpid()), session],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)
    if proc.stdout.readline().strip() != b"ready":
        proc.wait()
        raise RuntimeError("the Ray session's watchdog did not start")
    proc.stdout.close()
    return proc


def stop(proc: subprocess.Popen) -> None:
    """After ray.shutdown(): the watchdog kills what is left of the session and exits."""
    try:
        proc.stdin.close()
    except OSError:
        pass
    proc.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
