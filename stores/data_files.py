"""DuckDB as a reader of data files a job names (benchmark Parquet), apart from the store:
an in-memory connection that reads one file and is closed."""
from __future__ import annotations

from pathlib import Path

import duckdb

from stores.rows import dict_rows


def parquet_rows(path: str | Path) -> list[dict]:
    """Every row of a Parquet file as a dict; duckdb.Error when the file is not readable Parquet."""
    con = duckdb.connect()
    try:
        return dict_rows(con, "SELECT * FROM read_parquet(?)", [str(path)])
    finally:
        con.close()
