"""`factory sql` / `factory.sql()` run only statements that read, on a connection that can
reach no other file; a damaged database file is one `error:` line naming it."""
import hashlib
import json
import os
import shutil

import duckdb
import pytest

import factory
from factory.cli import main
from stores import Store, StoreError, open_database
from stores.read_only_sql import SETTINGS, RefusedStatement

JOB = "f00d"


def build(path, verdicts=(("s0", "accept"), ("s1", "accept"), ("s2", "reject"))) -> None:
    """A database made by the migrations, with one job, its seeds, samples and verdicts."""
    with Store(path) as store:
        con = store.con
        con.execute("""INSERT INTO jobs (fingerprint, name, recipe, spec, decision_rule, num_samples)
                       VALUES (?, 'demo', 'tinystories', '{}', '{}', ?)""", [JOB, len(verdicts)])
        for i, (sample_id, decision) in enumerate(verdicts):
            con.execute("INSERT INTO seeds VALUES (?, ?, ?, '{}')", [f"seed{i}", JOB, i])
            con.execute("""INSERT INTO samples (sample_id, job, seed_id, seed_index, text, content_hash)
                           VALUES (?, ?, ?, ?, ?, ?)""", [sample_id, JOB, f"seed{i}", i, f"story {i}", f"h{i}"])
            con.execute("INSERT INTO verdicts (sample_id, job, decision, stage) VALUES (?, ?, ?, 'rule')",
                        [sample_id, JOB, decision])


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def count(path, table: str) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        con.close()


@pytest.fixture
def dbs(tmp_path):
    db, other = tmp_path / "f.duckdb", tmp_path / "other.duckdb"
    build(db)
    build(other, verdicts=(("o0", "accept"), ("o1", "reject")))
    return db, other


# (id, query with {db} {other} {tmp} filled in, what the one line says)
REFUSED = [
    ("copy-to-a-file", "COPY (SELECT 1) TO '{tmp}/x.csv'", "got COPY"),
    ("copy-over-the-database", "COPY (SELECT 1) TO '{db}' (FORMAT csv)", "got COPY"),
    ("read-csv-of-etc-passwd", "SELECT * FROM read_csv('/etc/passwd')", "external file access is off"),
    ("attach-then-delete", "ATTACH '{other}' AS o; DELETE FROM o.verdicts",
     "runs one statement at a time; got 2 (ATTACH, DELETE)"),
    ("attach", "ATTACH '{other}' AS o", "got ATTACH"),
    ("delete", "DELETE FROM samples", "got DELETE"),
    ("delete-after-with", "WITH x AS (SELECT 1) DELETE FROM samples", "got DELETE (WITH ...)"),
    ("create-table-as", "CREATE TABLE x AS SELECT 1", "got CREATE"),
    ("install", "INSTALL httpfs", "got LOAD (INSTALL ...)"),
    ("set-external-access-on", "SET enable_external_access=true", "got SET"),
    ("pragma-that-writes", "PRAGMA force_checkpoint", "got PRAGMA"),
    ("select-then-drop", "SELECT 1; DROP TABLE jobs", "runs one statement at a time; got 2 (SELECT, DROP)"),
    ("explain-analyze-delete", "EXPLAIN ANALYZE DELETE FROM samples", "got EXPLAIN of DELETE"),
    # the options' string holds a ')': the tokenizer, not a regex, finds where they end
    ("explain-options-hiding-a-delete", "EXPLAIN (FORMAT ') SELECT 1 --') DELETE FROM samples",
     "got EXPLAIN of DELETE"),
    ("nothing", "-- only a comment", "needs one statement; got none"),
]


def fill(query: str, db, other, tmp) -> str:
    return query.format(db=db, other=other, tmp=tmp)


@pytest.mark.parametrize("query, why", [(q, w) for _, q, w in REFUSED], ids=[i for i, _, _ in REFUSED])
def test_the_cli_refuses_with_exit_2_one_line_and_changes_no_file(dbs, tmp_path, capsys, query, why):
    db, other = dbs
    before = {path: digest(path) for path in (db, other)}
    assert main(["sql", fill(query, db, other, tmp_path), "--db", str(db)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.rstrip("\n")
    assert "\n" not in err and err.startswith("error: factory sql ") and why in err, err
    assert {path: digest(path) for path in (db, other)} == before
    assert (count(db, "samples"), count(db, "verdicts"), count(other, "verdicts")) == (3, 3, 2)
    assert not (tmp_path / "x.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.duckdb", "other.duckdb"]


@pytest.mark.parametrize("query, why", [(q, w) for _, q, w in REFUSED], ids=[i for i, _, _ in REFUSED])
def test_the_api_raises_with_the_same_line(dbs, tmp_path, query, why):
    db, other = dbs
    before = {path: digest(path) for path in (db, other)}
    with pytest.raises(RefusedStatement) as raised:
        factory.sql(fill(query, db, other, tmp_path), db=db)
    assert isinstance(raised.value, ValueError)
    message = str(raised.value)
    assert "\n" not in message and message.startswith("factory sql ") and why in message
    assert {path: digest(path) for path in (db, other)} == before
    assert not (tmp_path / "x.csv").exists()


def test_the_connection_itself_reaches_no_file_and_cannot_be_reopened(dbs):
    """The second fence alone: what gets past the statement check still cannot touch a file."""
    db, other = dbs
    con = open_database(db, read_only=True, config=SETTINGS)
    try:
        with pytest.raises(duckdb.PermissionException):
            con.execute(f"ATTACH '{other}' AS o")
        with pytest.raises(duckdb.PermissionException):
            con.execute("SELECT * FROM read_text('/etc/passwd')")
        for statement in ("SET enable_external_access = true", "RESET enable_external_access",
                          "SET lock_configuration = false"):
            with pytest.raises(duckdb.InvalidInputException, match="the configuration has been locked"):
                con.execute(statement)
    finally:
        con.close()


READS = [
    ("select", "SELECT count(*) AS n FROM samples", lambda rows: rows == [{"n": 3}]),
    ("with", "WITH a AS (SELECT decision FROM verdicts) SELECT decision, count(*) AS n FROM a GROUP BY 1 ORDER BY 1",
     lambda rows: rows == [{"decision": "accept", "n": 2}, {"decision": "reject", "n": 1}]),
    ("from-first", "FROM seeds SELECT seed_id ORDER BY seed_index",
     lambda rows: [r["seed_id"] for r in rows] == ["seed0", "seed1", "seed2"]),
    ("describe", "DESCRIBE samples", lambda rows: {"sample_id", "text", "job"} <= {r["column_name"] for r in rows}),
    ("show-tables", "SHOW TABLES", lambda rows: {"samples", "verdicts", "accepted"} <= {r["name"] for r in rows}),
    ("explain", "EXPLAIN SELECT * FROM samples", lambda rows: rows[0]["explain_key"] == "physical_plan"),
    ("explain-analyze-select", "EXPLAIN ANALYZE SELECT * FROM samples",
     lambda rows: rows[0]["explain_key"] == "analyzed_plan"),
    ("summarize", "SUMMARIZE samples", lambda rows: {"sample_id", "text"} <= {r["column_name"] for r in rows}),
    ("accepted-view", "SELECT sample_id FROM accepted ORDER BY sample_id",
     lambda rows: rows == [{"sample_id": "s0"}, {"sample_id": "s1"}]),
]


@pytest.mark.parametrize("query, check", [(q, c) for _, q, c in READS], ids=[i for i, _, _ in READS])
def test_reads_still_work_through_the_cli_and_the_api(dbs, capsys, query, check):
    db, _ = dbs
    rows = factory.sql(query, db=db)
    assert check(rows), rows
    assert main(["sql", query, "--db", str(db), "--json"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert check(printed), printed  # not == rows: EXPLAIN ANALYZE prints its own timings


def test_a_query_that_fails_is_one_line_and_exit_1(dbs, capsys):
    db, _ = dbs
    assert main(["sql", "SELECT * FROM nosuch", "--db", str(db)]) == 1
    err = capsys.readouterr().err.rstrip("\n")
    assert "\n" not in err and err.startswith("error: Catalog Error: Table with name nosuch does not exist")


# A damaged file. Where DuckDB notices depends on what is damaged: the header and the
# catalog at connect, a table's data block only at the first query that reads it.

def _flip(path, offset: int, n: int = 16) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        data = f.read(n)
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in data))


def _block_offset(db, blocks_sql: str) -> int:
    """Where the first block blocks_sql names starts in the file: three 4096-byte headers,
    then blocks of block_size bytes, each led by an 8-byte checksum."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        block = con.execute(f"SELECT min(block_id) FROM {blocks_sql}").fetchone()[0]
        size = con.execute("SELECT block_size FROM pragma_database_size()").fetchone()[0]
    finally:
        con.close()
    return 3 * 4096 + block * size


def truncated_to_half(db):
    os.truncate(db, os.path.getsize(db) // 2)


def header_flipped(db):
    _flip(db, 0, 64)  # the main header: "not a valid DuckDB database file" at connect


def verdicts_block_flipped(db):
    # 100 bytes in: inside the rows, which the block's checksum covers
    _flip(db, _block_offset(db, "pragma_storage_info('verdicts') WHERE block_id >= 0") + 100)


DAMAGE = [truncated_to_half, header_flipped, verdicts_block_flipped]


def _assert_one_line_naming(err: str, db) -> None:
    err = err.rstrip("\n")
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith(f"error: database {db} is not a readable DuckDB file ("), err


@pytest.mark.parametrize("damage", DAMAGE, ids=[d.__name__ for d in DAMAGE])
def test_a_damaged_database_is_one_error_line_naming_the_file(tmp_path, capsys, damage):
    good, db = tmp_path / "good.duckdb", tmp_path / "bad.duckdb"
    build(good)
    shutil.copy(good, db)
    damage(db)
    assert main(["stats", "--db", str(db)]) == 1
    _assert_one_line_naming(capsys.readouterr().err, db)
    assert main(["sql", "SELECT * FROM verdicts", "--db", str(db)]) == 1
    _assert_one_line_naming(capsys.readouterr().err, db)
    with pytest.raises(StoreError) as raised:  # what `factory run` opens: connect, migrate, then reads
        with Store(db) as store:
            store.con.execute("SELECT * FROM verdicts").fetchall()
    assert str(raised.value).startswith(f"database {db} is not a readable DuckDB file (")


def test_damage_found_only_at_the_first_query_is_the_same_line(tmp_path):
    db = tmp_path / "bad.duckdb"
    build(db)
    verdicts_block_flipped(db)
    con = open_database(db, read_only=True)  # the header and catalog are fine: connect works
    try:
        assert con.execute("SELECT count(*) FROM samples").fetchone()[0] == 3
        with pytest.raises(StoreError, match=r"not a readable DuckDB file \(Corrupt database file: computed checksum"):
            con.execute("SELECT * FROM verdicts").fetchall()
    finally:
        con.close()


def test_a_damaged_catalog_is_not_taken_for_a_lock(tmp_path):
    """DuckDB's checksum message says 'in block at location': once read as a lock ('block')."""
    db = tmp_path / "bad.duckdb"
    build(db)
    _flip(db, _block_offset(db, "pragma_metadata_info()") + 100)  # the catalog, read at connect
    with pytest.raises(StoreError) as raised:
        open_database(db, read_only=True)
    assert "in use" not in str(raised.value)
    assert str(raised.value).startswith(f"database {db} is not a readable DuckDB file (Corrupt database file")
