"""Rows of a query as dicts keyed by the query's column names."""
from __future__ import annotations


def dict_rows(con, sql: str, params: list | dict | None = None) -> list[dict]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]
