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
from support import HELD_RUN as RUN
from support import REPO, fake_job, until

import factory
from stores import Store, StoreError
from stores.read_only_sql import RefusedStatement
from stores.snapshot import SnapshotWriter, open_for_reading, snapshot_path

TESTS = Path(__file__).resolve().parents[1]
DEADLINE_S = 120  # polls end here on a stuck run; a healthy one needs a few seconds
ANNOUNCED = re.compile(r"^database (\S+) is being written by a running job \(PID (\d+)\); "
                       r"reading its snapshot from \d\d:\d\d:\d\d$")


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "factory.cli", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=DEADLINE_S)


def samples(db) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM samples").fetchone()[0]
    finally:
        con.close()


@pytest.mark.slow  # a whole run watched: 89 s at load 10 (the snapshot's own tests below are fast)
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


# `factory run` (fake backend) that marks each commit with a file (committed-N, written after
# the commit's snapshot refresh), holds the batch at position `hold` (-1: none) until
# release-batch exists, and holds its engines' shutdown (a Ray shutdown takes seconds) until
# release-close exists, marking its start with closing.
MARKED = """
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
import fakes
fakes.install()
import factory.pipeline as pipeline
from factory.cli import main

here, deadline, hold = Path(sys.argv[3]), {deadline}, {hold}
real_batch, real_outcomes, real_executor = pipeline.run_batch, pipeline.outcomes_of, pipeline.make_executor
commits, started = [], []

def wait_for(name):
    end = time.monotonic() + deadline
    while not (here / name).exists() and time.monotonic() < end:
        time.sleep(0.05)

def held(ctx, indices, *between):
    started.append(indices)
    if len(started) - 1 == hold:
        wait_for("release-batch")
    return real_batch(ctx, indices, *between)

def marked(batch):  # called by commit() after the snapshot refresh
    (here / f"committed-{{len(commits)}}").touch()
    commits.append(batch)
    return real_outcomes(batch)

def slow_executor(*args, **kwargs):
    executor = real_executor(*args, **kwargs)
    close = executor.close
    def slow_close():
        (here / "closing").touch()
        wait_for("release-close")
        close()
    executor.close = slow_close
    return executor

pipeline.run_batch, pipeline.outcomes_of, pipeline.make_executor = held, marked, slow_executor
sys.exit(main(["run", sys.argv[1], "--db", sys.argv[2], "--quiet"]))
"""


def marked_run(tmp_path, execution: dict, num_samples: int, hold: int = -1):
    db, job = tmp_path / "watched.duckdb", tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(fake_job(num_samples=num_samples, execution={"executor": "local", **execution})))
    script = MARKED.format(tests=str(TESTS), deadline=DEADLINE_S, hold=hold)
    return db, subprocess.Popen([sys.executable, "-c", script, job, db, tmp_path], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(run, tmp_path):
    (tmp_path / "release-batch").touch()
    (tmp_path / "release-close").touch()
    try:
        _, err = run.communicate(timeout=DEADLINE_S)
    finally:
        run.kill()
    assert run.returncode == 0, err


def test_readers_get_data_while_the_run_stops_its_engines(tmp_path):
    """Issue 23 G: the demo's layout (batches of 12, 3 in flight) on 12 seeds is one commit;
    the snapshot used to be removed before the engines' (Ray's) shutdown, so stats and sql
    in that window exited 1 "in use", and a watcher had seen 0 rows the whole run."""
    db, run = marked_run(tmp_path, {"batch_size": 12, "batches_in_flight": 3}, num_samples=12)
    try:
        until(lambda: (tmp_path / "closing").exists() or run.poll() is not None, "the engines' shutdown")
        assert run.poll() is None, run.communicate()[1]
        stats = cli("stats", "--db", db, "--json")
        assert stats.returncode == 0, stats.stderr
        assert ANNOUNCED.match(stats.stderr.strip()), stats.stderr
        counted = cli("sql", "SELECT count(*) AS n FROM samples", "--db", db, "--json")
        assert counted.returncode == 0, counted.stderr
        seen = json.loads(counted.stdout)["n"]
        watched = json.loads(stats.stdout)
        assert run.poll() is None  # read while the run held the database
    finally:
        finish(run, tmp_path)
    assert not snapshot_path(db).exists()
    assert seen == samples(db) > 0  # the one batch's rows, before the run ended
    assert watched["funnel"]["seeds"] == 12


def test_a_watcher_sees_the_first_batch_of_each_in_flight_group(tmp_path):
    """Batches of a group commit together and fast ones used to be skipped by the rate
    limit: the first commit of each group is copied whatever it says."""
    db, run = marked_run(tmp_path, {"batch_size": 3, "batches_in_flight": 3}, num_samples=9, hold=1)
    try:
        until(lambda: (tmp_path / "committed-0").exists() or run.poll() is not None, "the first commit")
        assert run.poll() is None, run.communicate()[1]
        counted = cli("sql", "SELECT count(*) AS n, max(seed_index) AS last FROM samples", "--db", db, "--json")
        assert counted.returncode == 0, counted.stderr
        seen = json.loads(counted.stdout)
        assert not (tmp_path / "committed-1").exists()  # batch 1 is held: only batch 0 committed
    finally:
        finish(run, tmp_path)
    con = duckdb.connect(str(db), read_only=True)
    try:
        first_batch = con.execute("SELECT count(*) FROM samples WHERE seed_index < 3").fetchone()[0]
    finally:
        con.close()
    assert first_batch > 0 and seen["n"] == first_batch and seen["last"] < 3


def test_a_reader_looks_again_when_the_run_ends_between_its_looks(tmp_path, monkeypatch):
    """The database held, then no snapshot: the run closed the database and removed its
    snapshot in between (in that order), so the database is free at the next look."""
    import stores.snapshot as snapshot

    db = tmp_path / "f.duckdb"
    build(db, 2)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(db)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    real = snapshot._open_snapshot

    def run_ends(*args):
        holder.kill()
        holder.wait()
        return real(*args)

    monkeypatch.setattr(snapshot, "_open_snapshot", run_ends)
    try:
        con = open_for_reading(db)
        try:
            assert con.execute("SELECT count(*) FROM samples").fetchone()[0] == 2
        finally:
            con.close()
    finally:
        holder.kill()
        holder.wait()


# `factory run` (fake backend) held after it opened the database and before its first
# snapshot, until release-open exists; "opening" marks the hold.
OPENING = """
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
import fakes
fakes.install()
import stores.snapshot as snapshot
from factory.cli import main

here, real, calls = Path(sys.argv[3]), snapshot.SnapshotWriter.refresh, []

def first_held(self, force=False):
    calls.append(force)
    if len(calls) == 1:
        (here / "opening").touch()
        end = time.monotonic() + {deadline}
        while not (here / "release-open").exists() and time.monotonic() < end:
            time.sleep(0.05)
    return real(self, force)

snapshot.SnapshotWriter.refresh = first_held
sys.exit(main(["run", sys.argv[1], "--db", sys.argv[2], "--quiet"]))
"""


def test_a_reader_at_the_start_of_a_run_waits_for_its_first_snapshot(tmp_path, monkeypatch):
    """Between the run opening the database and its first snapshot, a reader used to exit 1
    "in use"; it waits for the snapshot (the run marks its start next to the database)."""
    import threading

    import stores.snapshot as snapshot

    db, job = tmp_path / "watched.duckdb", tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(fake_job(num_samples=4, execution={"executor": "local", "batch_size": 2})))
    run = subprocess.Popen([sys.executable, "-c", OPENING.format(tests=str(TESTS), deadline=DEADLINE_S), job, db,
                            tmp_path], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    waiting, outcome = threading.Event(), {}

    class Clock:  # stores.snapshot's clock, whose sleep says the reader is waiting
        monotonic = staticmethod(time.monotonic)

        @staticmethod
        def sleep(seconds):
            waiting.set()
            time.sleep(seconds)

    monkeypatch.setattr(snapshot, "time", Clock)

    def read():
        try:
            outcome["stats"] = factory.stats(db)
        except BaseException as err:  # noqa: BLE001 - reported below
            outcome["error"] = err

    try:
        until(lambda: (tmp_path / "opening").exists() or run.poll() is not None, "the run to open its database")
        assert run.poll() is None, run.communicate()[1]
        reader = threading.Thread(target=read)
        reader.start()
        until(lambda: waiting.is_set() or not reader.is_alive(), "the reader to wait or fail")
        (tmp_path / "release-open").touch()
        reader.join(DEADLINE_S)
        assert "error" not in outcome, outcome
        assert outcome["stats"]["snapshot"]["writer_pid"] == run.pid
    finally:
        (tmp_path / "release-open").touch()
        try:
            _, err = run.communicate(timeout=DEADLINE_S)
        finally:
            run.kill()
    assert run.returncode == 0, err
    assert not any(".run-starting." in p.name for p in tmp_path.iterdir())
