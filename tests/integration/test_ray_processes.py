"""Issue 23 H: the Ray processes a run starts end with it. After kill -9 of the driver the
raylet's agents (and for a while its workers) used to live on, re-parented to PID 1; after
a normal exit the agents were still alive a second later. The test records every process
of the run's tree (Ray's GCS, raylet, monitors, agents, workers) while a batch is held, then
ends the driver and waits for each of them (by PID and start time) to be gone."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from support import REPO, fake_job, until

TESTS = Path(__file__).resolve().parents[1]
# A cutoff for a stuck test, not a measured time: the watchdog sees the driver's end at once
# (its pipe closes) and kills; before it, the agents lived on for a minute or more.
DEADLINE_S = 120

# `factory run` on the fake backend through the Ray executor, paused in its second batch
# (engines up, workers started) until the release file exists; "held" marks the pause.
RUN = """
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
import fakes
fakes.install()
import factory.pipeline as pipeline
from factory.cli import main

here, batches, real = Path(sys.argv[3]), [], pipeline.run_batch

def held(ctx, indices, *between):
    batches.append(indices)
    if len(batches) == 2:
        (here / "held").touch()
        end = time.monotonic() + {deadline}
        while not (here / "release").exists() and time.monotonic() < end:
            time.sleep(0.05)
    return real(ctx, indices, *between)

pipeline.run_batch = held
sys.exit(main(["run", sys.argv[1], "--db", sys.argv[2], "--quiet"]))
"""


def stat(pid: int):
    """(parent, start time, state), None when gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text(errors="replace")
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[19]), fields[0]


def tree(root: int) -> dict[int, int]:
    """Every live descendant of root: pid -> start time."""
    procs = {int(p): stat(int(p)) for p in os.listdir("/proc") if p.isdigit()}
    children: dict[int, list[int]] = {}
    for pid, st in procs.items():
        if st is not None:
            children.setdefault(st[0], []).append(pid)
    out, stack = {}, list(children.get(root, ()))
    while stack:
        pid = stack.pop()
        if procs.get(pid) is not None and pid not in out:
            out[pid] = procs[pid][1]
            stack.extend(children.get(pid, ()))
    return out


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return b""


def alive(recorded: dict[int, int]) -> list[str]:
    left = []
    for pid, start in recorded.items():
        st = stat(pid)
        if st is not None and st[1] == start and st[2] != "Z":
            left.append(f"{pid} {cmdline(pid)[:80]!r}")
    return left


def held_run(tmp_path):
    db, job = tmp_path / "r.duckdb", tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(fake_job(num_samples=4, execution={"executor": "ray", "batch_size": 2,
                                                                     "engines": 2})))
    run = subprocess.Popen([sys.executable, "-c", RUN.format(tests=str(TESTS), deadline=DEADLINE_S), job, db,
                            tmp_path], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    until(lambda: (tmp_path / "held").exists() or run.poll() is not None, "the held batch")
    assert run.poll() is None, run.communicate()[1]
    recorded = tree(run.pid)
    names = b" ".join(cmdline(pid) for pid in recorded)
    assert b"raylet" in names and b"ray::" in names, names  # Ray's processes and its workers are up
    return run, recorded


@pytest.mark.slow  # a `factory run` on Ray per ending: 107 and 113 s at load 22
@pytest.mark.parametrize("ending", ["kill -9", "normal exit"])
def test_no_ray_process_outlives_the_driver(tmp_path, ending):
    run, recorded = held_run(tmp_path)
    try:
        if ending == "kill -9":
            # The driver's watchdog (factory/executors/reaper.py) ends the session's processes
            # when the driver dies and exits once they are gone: its exit is the event to wait
            # on. Without it the agents lived on for a minute or more.
            watchdogs = [pid for pid in recorded if b"factory/executors/reaper.py" in cmdline(pid)]
            assert len(watchdogs) == 1, [cmdline(pid) for pid in recorded]
            os.kill(run.pid, signal.SIGKILL)
            run.wait()
            until(lambda: not alive({pid: recorded[pid] for pid in watchdogs}), "the watchdog's exit")
            assert not alive(recorded)
        else:
            (tmp_path / "release").touch()
            _, err = run.communicate(timeout=DEADLINE_S)
            assert run.returncode == 0, err
            assert not alive(recorded)  # gone when the driver exits: it waited for them
    finally:
        (tmp_path / "release").touch()
        run.kill()
        run.wait()
        for pid, start in recorded.items():  # a failed run of this test leaves nothing behind either
            st = stat(pid)
            if st is not None and st[1] == start:
                os.kill(pid, signal.SIGKILL)
