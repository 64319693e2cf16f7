"""Opening the DuckDB file: one writer (the driver), clear messages when it is busy."""
from __future__ import annotations

import re
from pathlib import Path

import duckdb


class StoreError(RuntimeError):
    """A one-line, user-facing store problem."""


def _explain(path: Path, err: duckdb.Error) -> StoreError:
    text = str(err)
    if "lock" in text.lower():
        pid = re.search(r"PID (\d+)", text)
        who = f" (PID {pid.group(1)})" if pid else ""
        return StoreError(f"database {path} is in use by another process{who}: wait for it to finish or use another --db")
    return StoreError(f"cannot open database {path}: {text.splitlines()[0]}")


def open_database(path: str | Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    path = Path(path)
    if read_only and not path.exists():
        raise StoreError(f"no database at {path}: run a job first, or pass --db")
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as err:
        raise _explain(path, err) from None
