"""The one way the store writes several statements as one: all of them or none."""
from __future__ import annotations

from contextlib import contextmanager

import duckdb


@contextmanager
def transaction(con):
    """BEGIN; COMMIT when the block ends; ROLLBACK and re-raise when it (or the commit) fails.

    A failed write can have ended the transaction already: DuckDB aborts it itself on a fatal
    error such as a full disk (and may invalidate the database), and the rollback then
    raises "cannot rollback - no transaction is active". That second error says nothing new,
    so it is attached to the original one as a note and the original is what propagates.
    """
    con.begin()
    try:
        yield con
        con.commit()
    except BaseException as error:
        try:
            con.rollback()
        except duckdb.Error as rollback_error:
            error.add_note(f"(the rollback after it failed too: {rollback_error})")
        raise
