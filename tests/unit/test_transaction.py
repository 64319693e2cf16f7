"""stores.transaction: all of a block's writes or none, and the block's own error propagates
even when the failed write already ended the transaction (as a full disk does)."""
import duckdb
import pytest

from stores.transaction import transaction


@pytest.fixture
def con():
    c = duckdb.connect()
    c.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
    yield c
    c.close()


def test_the_block_commits_when_it_ends(con):
    with transaction(con):
        con.execute("INSERT INTO t VALUES (1), (2)")
    assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 2


def test_a_failing_block_leaves_nothing_and_raises_its_error(con):
    with pytest.raises(duckdb.ConstraintException):
        with transaction(con):
            con.execute("INSERT INTO t VALUES (1)")
            con.execute("INSERT INTO t VALUES (1)")
    assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    with transaction(con):  # the connection is usable again: no transaction was left open
        con.execute("INSERT INTO t VALUES (3)")
    assert con.execute("SELECT k FROM t").fetchall() == [(3,)]


def test_an_already_ended_transaction_does_not_mask_the_original_error(con):
    # What DuckDB does on a fatal write error (disk full): the transaction is gone before the
    # helper's rollback, which then raises "cannot rollback - no transaction is active".
    with pytest.raises(OSError, match="No space left on device") as caught:
        with transaction(con):
            con.execute("INSERT INTO t VALUES (1)")
            con.execute("ROLLBACK")
            raise OSError(28, "No space left on device")
    assert any("no transaction is active" in note for note in caught.value.__notes__)
    assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 0
