"""The verification step: each generated query runs in an in-memory DuckDB holding the
schema, with external access off (no files, no network, no extensions), under a time limit."""
import threading

import duckdb

from factory.steps import add_gate


def run_query(schema_sql: str, sql: str, timeout_s: float = 5.0):
    """(rows, None) or (None, why)."""
    if not sql.lstrip().lower().startswith(("select", "with")):
        return None, "not a SELECT"
    con = duckdb.connect(":memory:", config={"enable_external_access": False})
    timer = threading.Timer(timeout_s, con.interrupt)
    try:
        con.execute(schema_sql)
        timer.start()
        return con.execute(sql).fetchmany(50), None
    except duckdb.Error as err:
        return None, f"{type(err).__name__}: {str(err).splitlines()[0]}"
    finally:
        timer.cancel()
        con.close()


class RunsQuery:
    reads, writes = ("samples", "parsed"), ("samples",)

    def __init__(self, schema_sql: str):
        self.schema_sql = schema_sql

    def run(self, ctx, state):
        for i in list(state.samples):
            rows, why = run_query(self.schema_sql, state.parsed[i].sql)
            add_gate(ctx, state, i, "sql_runs", why is None, f"query failed: {why}",
                     details={"rows": len(rows) if rows is not None else None})
