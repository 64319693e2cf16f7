import duckdb
import pytest

from stores import BatchRows, Store, StoreError, open_database


def test_migrations_are_numbered_and_applied_once(tmp_path):
    db = tmp_path / "s.duckdb"
    Store(db).close()
    Store(db).close()
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT version, name FROM schema_migrations").fetchall() == [(1, "m001_initial"), (2, "m002_verification"), (3, "m003_curation"), (4, "m004_distill"), (5, "m005_role_and_versions"), (6, "m006_job_curation"), (7, "m007_semantic_contamination"), (8, "m008_probe"), (9, "m009_signals"), (10, "m010_outside_duplicates"), (11, "m011_stats_summaries"), (12, "m012_labels"), (13, "m013_completion_messages")]


def test_a_failing_batch_leaves_nothing(tmp_path):
    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        batch = BatchRows(batch_id="b", job="j", seed_indices=[0, 1])
        batch.add("seeds", {"seed_id": "s0", "job": "j", "seed_index": 0, "payload": {}})
        batch.add("seeds", {"seed_id": "s0", "job": "j", "seed_index": 1, "payload": {}})  # duplicate key
        with pytest.raises(duckdb.ConstraintException):
            store.write_batch(batch)
        assert store.con.execute("SELECT count(*) FROM seeds").fetchone()[0] == 0
        assert store.done_indices("j") == set()


def test_a_second_writer_gets_a_clear_message(tmp_path):
    import subprocess
    import sys

    db = tmp_path / "s.duckdb"
    Store(db).close()
    holder = subprocess.Popen([sys.executable, "-c",
                               f"import duckdb,time; c=duckdb.connect({str(db)!r}); print('held', flush=True); time.sleep(30)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match=r"is in use by another process .*PID \d+"):
            Store(db)
        with pytest.raises(StoreError, match="in use"):
            open_database(db, read_only=True)
    finally:
        holder.kill()
        holder.wait()


def test_reading_a_missing_database_says_so(tmp_path):
    with pytest.raises(StoreError, match="no database at"):
        open_database(tmp_path / "none.duckdb", read_only=True)
    assert not (tmp_path / "none.duckdb").exists()
