"""`factory sql` is bounded in time, memory and disk (issue 23 A): the queries of the
fault-injection round ran until killed (memory_limit 18.8 GiB, spill up to 90% of the disk
in <db>.tmp). Past a limit: one line naming it, exit 1, nothing left behind."""
import threading
import time

import duckdb
import pytest

import factory
import stores.query_limits as query_limits
from factory.cli import main
from stores.query_limits import QueryLimit, bounded


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "f.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t AS SELECT 1 AS a")
    con.close()
    return path


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("query", [
    "SELECT count(*) FROM range(100000000000)",
    "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM t) SELECT count(*) FROM t",
])
def test_a_query_past_its_time_limit_is_one_line_and_exit_1(db, query, capsys):
    assert main(["sql", query, "--db", str(db), "--timeout", "1"]) == 1
    assert one_line(capsys.readouterr().err) == (
        "error: factory sql: stopped at the time limit of 1 s (--timeout 1): narrow the query or raise --timeout")


def test_a_query_past_its_memory_limit_stops_and_spills_nothing(db, capsys):
    # a hash of 50M distinct keys: DuckDB would spill it to <db>.tmp; here it stops at the limit
    query = "SELECT count(*) FROM (SELECT DISTINCT i FROM range(50000000) t(i))"
    before = set(db.parent.iterdir())
    assert main(["sql", query, "--db", str(db), "--memory-limit", "64MB"]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("error: factory sql: stopped at the memory limit of 64MB (--memory-limit 64MB")
    assert set(db.parent.iterdir()) == before and not db.with_name(db.name + ".tmp").exists()


def test_the_limits_are_set_and_locked(db, capsys):
    assert main(["sql", "SELECT current_setting('memory_limit') AS m, current_setting('temp_directory') AS t",
                 "--db", str(db), "--memory-limit", "300MB", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"t": ""' in out and "MiB" in out  # no spill directory at all
    got = factory.sql("SELECT current_setting('memory_limit') AS m", db)[0]["m"]
    expected_mib = int(query_limits.default_memory_limit().removesuffix("MiB"))
    assert abs(float(got.split()[0]) * (1024 if "GiB" in got else 1) - expected_mib) / expected_mib < 0.05, got


def test_the_library_raises_query_limit(db):
    with pytest.raises(QueryLimit, match="time limit of 0.5 s"):
        factory.sql("SELECT count(*) FROM range(100000000000)", db, timeout=0.5)


@pytest.mark.parametrize("args, says", [
    (["--timeout", "0"], "--timeout: seconds > 0"),
    (["--timeout", "soon"], "--timeout: seconds > 0"),
    (["--memory-limit", "lots"], "--memory-limit: a size such as 512MB or 2GiB (got 'lots')"),
])
def test_a_bad_limit_is_bad_input(db, args, says, capsys):
    assert main(["sql", "SELECT 1", "--db", str(db), *args]) == 2
    assert says in one_line(capsys.readouterr().err)


class DeafConnection:
    """A query stuck where DuckDB never checks for the interrupt (one huge scalar call)."""
    interrupts = 0

    def interrupt(self):
        self.interrupts += 1


def test_a_query_deaf_to_the_interrupt_gets_on_stuck(monkeypatch):
    monkeypatch.setattr(query_limits, "STUCK_GRACE_S", 0.2)
    con, told, release = DeafConnection(), [], threading.Event()

    def stuck(line):
        told.append(line)
        release.set()  # the CLI exits the process here

    with bounded(con, 0.2, "1GB", on_stuck=stuck):
        assert release.wait(30)  # an outcome, not a timing: the watchdog says so or the test fails
    assert con.interrupts == 1 and told == [query_limits.timeout_line(0.2)]


def test_a_quick_query_is_untouched():
    con = DeafConnection()
    with bounded(con, 5, "1GB", on_stuck=lambda line: pytest.fail(line)):
        pass
    time.sleep(0.05)
    assert con.interrupts == 0
