"""What the functions of stores/ take: a Store, or a DuckDB connection.

Code outside stores/ hands over its Store (stores/store.py) and never the connection inside
it; the read-only tools (stats, report, sql) and tests hold a connection and pass that. A
function marked @takes_store turns the first into the second before its SQL runs.
"""
from __future__ import annotations

import functools


class HoldsConnection:
    """A Store: its connection (`con`) is for stores/ only (tests/unit/test_store_interface.py)."""

    con: object  # set by Store.__init__ (a BatchStore: its cursor)


def connection(db):
    """The connection to run SQL on: a Store's own, or db itself when it is a connection."""
    return db.con if isinstance(db, HoldsConnection) else db


def takes_store(fn):
    """fn(con, ...) called as fn(store, ...) too."""
    @functools.wraps(fn)
    def with_connection(db, *args, **kwargs):
        return fn(connection(db), *args, **kwargs)

    return with_connection
