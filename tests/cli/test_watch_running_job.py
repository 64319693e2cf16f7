"""A long run can be watched: while `factory run` holds the database, `factory stats` and
`factory sql` (CLI and API) read the snapshot the run keeps next to it (stores/snapshot.py)."""
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import yaml
from conftest import REPO, fake_job

import factory
from stores import Store, StoreError
from stores.read_only_sql import RefusedStatement
from stores.snapshot import SnapshotWriter, open_for_reading, snapshot_path

TESTS = Path(__file__).resolve().parents[1]
DEADLINE_S = 120  # polls end here on a stuck run; a healthy one needs a few seconds
ANNOUNCED = re.compile(r"^database (\S+) is being written by a running job \(PID (\d+)\); "
                       r"reading its snapshot from \d\d:\d\d:\d\d$")

# `factory run` with the fake backend registered (it lives in this test's process only),
# paused before its third batch until the test creates the release file: the run is still
# going while the test reads, whatever the machine's speed, and two batches are committed.
RUN = """
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
import fakes
fakes.install()
import factory.pipeline as pipeline
from factory.cli import main

release, batches, real = Path(sys.argv[3]), [], pipeline.run_batch

def held(ctx, indices):
    batches.append(indices)
    deadline = time.monotonic() + {deadline}
    while len(batches) == 3 and not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return real(ctx, indices)

pipeline.run_batch = held
sys.exit(main(["run", sys.argv[1], "--db", sys.argv[2], "--quiet"]))
"""


def until(condition, what: str):
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what} after {DEADLINE_S} s")
        time.sleep(0.05)


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "factory.cli", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=DEADLINE_S)


def samples(db) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM samples").fetchone()[0]
    finally:
        con.close()


def test_stats_and_sql_read_the_snapshot_while_a_run_writes(tmp_path, caplog):
    db, release, job = tmp_path / "watched.duckdb", tmp_path / "release", tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(fake_job(num_samples=15, execution={"executor": "local", "batch_size": 3})))
    run = subprocess.Popen([sys.executable, "-c", RUN.format(tests=str(TESTS), deadline=DEADLINE_S), job, db, release],
                           cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    snap = snapshot_path(db)
    try:
        until(lambda: snap.exists() or run.poll() is not None, "the run's snapshot")
        assert run.poll() is None, run.communicate()[1]

        stats = cli("stats", "--db", db, "--json")
        assert stats.returncode == 0, stats.stderr
        line = stats.stderr.strip()
        assert ANNOUNCED.match(line), line
        assert ANNOUNCED.match(line).groups() == (str(db), str(run.pid))
        watched = json.loads(stats.stdout)
        assert watched["snapshot"]["writer_pid"] == run.pid
        assert watched["snapshot"]["path"] == str(snap)

        counted = cli("sql", "SELECT count(*) AS n FROM samples", "--db", db, "--json")
        assert counted.returncode == 0, counted.stderr
        assert ANNOUNCED.match(counted.stderr.strip()), counted.stderr
        seen = json.loads(counted.stdout)["n"]

        # read_only_sql's fences hold on the snapshot too: no write, no file but the database
        copied = cli("sql", f"COPY samples TO '{tmp_path / 'out.csv'}'", "--db", db)
        assert copied.returncode == 2 and "read-only statements only" in copied.stderr, copied.stderr
        with pytest.raises(RefusedStatement, match="external file access is off"):
            factory.sql("SELECT * FROM read_csv('/etc/passwd')", db=db)
        with caplog.at_level(logging.WARNING, logger="stores.snapshot"):
            in_process = factory.stats(db)
        assert in_process["snapshot"]["writer_pid"] == run.pid
        assert any(ANNOUNCED.match(r.getMessage()) for r in caplog.records)
        assert run.poll() is None  # all of the above read while the run held the database
    finally:
        release.touch()
        try:
            out, err = run.communicate(timeout=DEADLINE_S)
        finally:
            run.kill()
    assert run.returncode == 0, err

    assert not snap.exists()  # the run removed it: the database is free to read again
    assert not (tmp_path / "out.csv").exists()
    after = cli("stats", "--db", db, "--json")
    assert after.returncode == 0 and "snapshot" not in after.stderr, after.stderr
    final = json.loads(after.stdout)
    assert "snapshot" not in final
    assert set(watched) - {"snapshot"} == set(final)  # the snapshot key is the only one added
    assert seen <= samples(db) and watched["funnel"]["generated"] <= final["funnel"]["generated"]
    assert final["funnel"]["seeds"] == 15


def build(db, n: int) -> None:
    with Store(db) as store:
        add(store.con, range(n))


def add(con, indices) -> None:
    for i in indices:
        con.execute("""INSERT INTO samples (sample_id, job, seed_id, seed_index, text, content_hash)
                       VALUES (?, 'j', ?, ?, 'story', ?)""", [f"s{i}", f"seed{i}", i, f"h{i}"])


def test_refresh_copies_committed_rows_and_spends_at_most_a_share_of_the_time(tmp_path):
    db = tmp_path / "f.duckdb"
    build(db, 2)
    ticks = iter([10.0, 11.0,  # the first copy "takes" 1 s: the next waits 19 s (5 %), not every_s = 2 s
                  29.0,  # too early: nothing is copied
                  30.5, 30.5])
    with Store(db) as store:
        writer = SnapshotWriter(store.con, db, every_s=2.0, clock=lambda: next(ticks))
        assert writer.refresh()
        assert samples(writer.path) == 2
        add(store.con, [2, 3])
        assert not writer.refresh()
        assert samples(writer.path) == 2
        assert writer.refresh()
        assert samples(writer.path) == 4
        leftovers = [writer.tmp, Path(f"{writer.tmp}.wal"), Path(f"{writer.path}.wal")]
        assert not any(p.exists() for p in leftovers)  # DETACH checkpointed: the renamed file is whole
        writer.close()
        assert not writer.path.exists()


HOLD = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(60)"


def test_a_leftover_snapshot_is_not_read_for_another_writer(tmp_path):
    """A run killed with -9 leaves its snapshot; while another process (PID not the one that
    wrote it) holds the database, readers say "in use" rather than show the old copy."""
    db = tmp_path / "f.duckdb"
    build(db, 1)
    with Store(db) as store:
        SnapshotWriter(store.con, db).refresh(force=True)  # written by this test's PID
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match=rf"in use by another process \(PID {holder.pid}\)"):
            open_for_reading(db)
        with pytest.raises(StoreError, match="in use"):
            factory.sql("SELECT 1", db=db)
        os.remove(snapshot_path(db))
        with pytest.raises(StoreError, match="in use"):  # no snapshot: the error as before
            factory.stats(db)
    finally:
        holder.kill()
        holder.wait()
