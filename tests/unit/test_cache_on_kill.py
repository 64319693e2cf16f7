"""kill -9 in the middle of a role call: the completions that arrived before it are in the
database (Caller saves them within ~1 s, in small groups), and a rerun asks the model only
for the missing ones and ends with the rows of an uninterrupted run.

The job is one batch of 15 seeds on the fake-slow backend (0.05 s a request): the
generator call takes ~0.75 s, the reviewer call (up to 45 requests) ~2 s, so the second
committed save of the cache lands inside the reviewer call, long before the batch's done
marks. The worker prints `saved` after each committed save and `call` after each fresh
completion (resume_worker.py): the kill is on that event, not after a sleep."""
import signal
import subprocess
import sys
from pathlib import Path

import duckdb

from test_resume_after_kill import CONTENT, snapshot

WORKER = Path(__file__).with_name("resume_worker.py")
N = 15


def worker(db: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), str(db), str(N), str(N)], stdout=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> list[str]:
    out = proc.communicate(timeout=120)[0].split()
    assert out and out[-1] == "finished", out
    return out


def completions(db: Path) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT request_key, text, prompt_tokens, completion_tokens FROM completions "
                           "ORDER BY 1").fetchall()
    finally:
        con.close()


def test_kill_mid_role_call_keeps_arrived_completions_and_rerun_makes_only_the_missing_calls(tmp_path):
    reference = tmp_path / "reference.duckdb"
    ref_events = finish(worker(reference))
    expected, expected_cache = snapshot(reference), completions(reference)
    assert ref_events.count("call") == len(expected_cache) and ref_events.count("batch") == 1

    db = tmp_path / "killed.duckdb"
    proc = worker(db)
    events = []
    while events.count("saved") < 2:
        line = proc.stdout.readline()
        assert line, f"the worker ended before its second save: {events}"
        events.append(line.strip())
        assert line.strip() != "batch", "the batch committed before the kill: make the role call longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    cached = completions(db)
    assert cached, "completions that arrived before the kill must be in the database"
    assert snapshot(db)["done"] == []  # the batch's rows and done marks never committed
    assert set(cached) < set(expected_cache)  # a strict part of the uninterrupted run's, identical rows

    rerun = finish(worker(db))
    assert rerun.count("call") == len(expected_cache) - len(cached)  # only the missing calls
    assert completions(db) == expected_cache
    got = snapshot(db)
    for table in CONTENT:
        assert got[table] == expected[table], f"{table} differs after kill + rerun"
