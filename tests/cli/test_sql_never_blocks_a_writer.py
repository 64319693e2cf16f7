"""Issue 23 A: a long `factory sql` never keeps a writer out. DuckDB lets no process open a
file read-write while another has it open, read-only included, so sql reads a private copy
(or a running job's snapshot) and holds the database only while it copies it."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml
from support import REPO, fake_job, until

import factory
from stores import Store
from stores.connection import COPYING

TESTS = Path(__file__).resolve().parents[1]
DEADLINE_S = 120  # a cutoff for a stuck test, not an expected time

RUN = """
import sys
sys.path.insert(0, {tests!r})
import fakes
fakes.install()
from factory.cli import main
sys.exit(main(["run", sys.argv[1], "--db", sys.argv[2], "--quiet"]))
"""


def open_duckdb_files(pid: int) -> list[str]:
    found = []
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.endswith(".duckdb"):
                found.append(target)
    except OSError:
        pass
    return found


def fake_run(job: Path, db: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", RUN.format(tests=str(TESTS)), job, db], cwd=REPO,
                          capture_output=True, text=True, timeout=DEADLINE_S)


@pytest.mark.slow  # a run beside a long query: 52 s at load 10 (the copy's own tests below are fast)
def test_a_run_starts_while_a_long_sql_runs(tmp_path):
    db, job, tmp = tmp_path / "busy.duckdb", tmp_path / "job.yaml", tmp_path / "tmp"
    tmp.mkdir()
    job.write_text(yaml.safe_dump(fake_job(num_samples=4, execution={"executor": "local", "batch_size": 2})))
    first = fake_run(job, db)
    assert first.returncode == 0, first.stderr
    job.write_text(yaml.safe_dump(fake_job(num_samples=8, execution={"executor": "local", "batch_size": 2})))

    long_sql = subprocess.Popen([sys.executable, "-m", "factory.cli", "sql",
                                 "SELECT count(*) FROM range(100000000000) JOIN samples ON true", "--db", db,
                                 "--timeout", "600"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env={**os.environ, "TMPDIR": str(tmp)})
    try:
        # the query is running once the process has a database (the file or its copy) open
        until(lambda: open_duckdb_files(long_sql.pid) or long_sql.poll() is not None, "the sql to open the data")
        assert long_sql.poll() is None, long_sql.communicate()
        second = fake_run(job, db)  # the writer: same path as factory curate (Store opens db read-write)
        assert second.returncode == 0, second.stderr
        assert long_sql.poll() is None  # the query was running all along
        with Store(db) as store:  # and another writer, in this process
            assert store.con.execute("SELECT count(*) FROM done_seeds").fetchone()[0] == 8
    finally:
        long_sql.send_signal(signal.SIGKILL)
        long_sql.wait()


def test_sql_leaves_no_copy_and_no_marker(tmp_path, monkeypatch):
    import tempfile

    db, tmp = tmp_path / "f.duckdb", tmp_path / "tmp"
    tmp.mkdir()
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE t AS SELECT 1 AS a")
    con.close()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    assert factory.sql("SELECT a FROM t", db=db) == [{"a": 1}]
    with pytest.raises(duckdb.Error):
        factory.sql("SELECT nope FROM t", db=db)
    assert list(tmp.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.duckdb", "tmp"]
    assert not any(COPYING in p.name for p in tmp_path.iterdir())


COPIER = """
import duckdb, os, sys
from pathlib import Path
from stores.connection import copying_marker
db = Path(sys.argv[1])
copying_marker(db, os.getpid()).write_text(str(os.getpid()))
con = duckdb.connect(str(db), read_only=True)
print("held", flush=True)
sys.stdin.readline()
con.close()
copying_marker(db, os.getpid()).unlink()
print("released", flush=True)
sys.stdin.readline()
"""


def test_a_writer_waits_out_the_copy(tmp_path, monkeypatch):
    """The one moment sql holds the database (its copy, under a marker naming its PID): a
    writer arriving then waits for the copy to end instead of failing "in use"."""
    import threading
    import time

    import stores.connection as connection

    db = tmp_path / "f.duckdb"
    with Store(db):
        pass
    copier = subprocess.Popen([sys.executable, "-c", COPIER, db], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    waiting, outcome = threading.Event(), {}

    class Clock:  # stores.connection's clock, whose sleep says the writer is waiting
        monotonic = staticmethod(time.monotonic)

        @staticmethod
        def sleep(seconds):
            waiting.set()
            time.sleep(seconds)

    monkeypatch.setattr(connection, "time", Clock)

    def write():
        try:
            with Store(db) as store:
                outcome["n"] = store.con.execute("SELECT count(*) FROM samples").fetchone()[0]
        except BaseException as err:  # noqa: BLE001 - reported below
            outcome["error"] = err

    try:
        assert copier.stdout.readline().strip() == "held"
        writer = threading.Thread(target=write)
        writer.start()
        until(lambda: waiting.is_set() or not writer.is_alive(), "the writer to wait or fail")
        copier.stdin.write("\n")
        copier.stdin.flush()
        writer.join(DEADLINE_S)
        assert outcome == {"n": 0}, outcome
    finally:
        copier.kill()
        copier.wait()
