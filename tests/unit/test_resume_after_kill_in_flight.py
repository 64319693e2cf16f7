"""kill -9 with 3 batches in flight (factory/streaming.py), rerun: exactly the rows of an
uninterrupted one-batch-at-a-time run; what a kill leaves is whole batches, in order."""
import random
import signal
import subprocess
import sys

import pytest

from test_resume_after_kill import CONTENT, WORKER, snapshot, wait_for

N = 15  # 5 batches of 3


def run(db, in_flight: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), str(db), str(N), "3", str(in_flight)],
                            stdout=subprocess.PIPE, text=True)


@pytest.mark.slow  # jobs killed and rerun in subprocesses: ~15 s
def test_sigkill_with_batches_in_flight_then_rerun_gives_the_uninterrupted_rows(tmp_path):
    reference = tmp_path / "reference.duckdb"
    assert run(reference, 1).communicate(timeout=120)[0].strip().endswith("finished")
    expected = snapshot(reference)
    assert len(expected["done"]) == N

    rng = random.Random(13)  # seeded: the same kill points on every run
    done_at_kill = []
    for attempt in range(2):
        db = tmp_path / f"killed{attempt}.duckdb"
        proc = run(db, 3)
        # after 1-3 committed batches, then 1-5 completions: other batches are mid-way then
        wait_for(proc, "batch", rng.randint(1, 3))
        wait_for(proc, "call", rng.randint(1, 5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        partial = snapshot(db)
        done = {i for _, i in partial["done"]}
        assert {row[1] for row in partial["seeds"]} == done  # no half batch
        assert done == set(range(len(done))) and len(done) % 3 == 0  # whole batches, committed in order
        done_at_kill.append(len(done))
        assert run(db, 3).communicate(timeout=120)[0].strip().endswith("finished")
        got = snapshot(db)
        for table in CONTENT:
            assert got[table] == expected[table], f"attempt {attempt}: {table} differs"
    assert all(0 < d < N for d in done_at_kill), done_at_kill
