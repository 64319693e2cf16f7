"""kill -9 at seeded random points, rerun: exactly the rows of an uninterrupted run."""
import random
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

WORKER = Path(__file__).with_name("resume_worker.py")
N = 15
CONTENT = {
    "seeds": "SELECT seed_id, seed_index, payload FROM seeds",
    "samples": "SELECT sample_id, text, content_hash, duplicate_of, rule_checks, request_key, completion_tokens FROM samples",
    "reviews": "SELECT review_id, sample_id, scores, overall, label, critique FROM reviews",
    "verdicts": "SELECT sample_id, decision, stage, reason, mean_score, spread FROM verdicts",
    "drops": "SELECT drop_id, role, reason, raw_text FROM drops",
    "done": "SELECT job, seed_index FROM done_seeds",
}


def snapshot(db: Path) -> dict:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {name: sorted(con.execute(sql).fetchall(), key=repr) for name, sql in CONTENT.items()}
    finally:
        con.close()


def run(db: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), str(db), str(N)], stdout=subprocess.PIPE, text=True)


def wait_for(proc: subprocess.Popen, event: str, times: int) -> None:
    """Read the worker's event lines until `event` has come `times` times."""
    seen = 0
    while seen < times:
        line = proc.stdout.readline()
        assert line, f"the worker ended before {times} {event!r} lines"
        seen += line.strip() == event


@pytest.mark.slow  # jobs killed at random points and rerun in subprocesses: ~23 s
def test_sigkill_at_random_points_then_rerun_gives_the_uninterrupted_rows(tmp_path):
    reference = tmp_path / "reference.duckdb"
    assert run(reference).communicate(timeout=120)[0].strip().endswith("finished")
    expected = snapshot(reference)
    assert len(expected["done"]) == N

    rng = random.Random(15)  # seeded: the same kill points on every run
    done_at_kill = []
    for attempt in range(3):
        db = tmp_path / f"killed{attempt}.duckdb"
        proc = run(db)
        # after 1-3 committed batches (of 5), then 1-5 completions: inside the next batch
        # (3 generator calls, up to 9 reviewer calls), on an event; every batch makes at least
        # 3 calls, so at most 4 of the 5 batches are done at the kill
        wait_for(proc, "batch", rng.randint(1, 3))
        wait_for(proc, "call", rng.randint(1, 5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if db.exists():  # killed mid-way: some batches may be there, never half of one
            partial = snapshot(db)
            done = {i for _, i in partial["done"]}
            assert {row[1] for row in partial["seeds"]} == done
            done_at_kill.append(len(done))
        assert run(db).communicate(timeout=120)[0].strip().endswith("finished")
        got = snapshot(db)
        for table in CONTENT:
            assert got[table] == expected[table], f"attempt {attempt}: {table} differs"
    # every kill landed mid-job (after a committed batch, before the last), or the test proved nothing
    assert all(0 < d < N for d in done_at_kill), done_at_kill
