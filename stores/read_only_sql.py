"""`factory sql` and `factory.sql()`: one statement that reads, on a connection that can reach
no file but the database.

Two fences, each enough against what a tester did (COPY over any file and over the
database itself, read_csv('/etc/passwd'), ATTACH another database and DELETE from it):
1. DuckDB's own parser names the statement's type; only a read is run. DuckDB parses WITH,
   DESCRIBE, SHOW, SUMMARIZE, VALUES, TABLE and FROM-first queries as SELECT statements;
   an EXPLAIN is run only when what it explains is a SELECT (EXPLAIN ANALYZE executes it).
2. The connection is opened read-only with external access off (no file but the database,
   no ATTACH, no INSTALL or LOAD) and its configuration locked, so a SET cannot turn that
   back on.
"""
from __future__ import annotations

from pathlib import Path

import duckdb

from stores.query_limits import (DEFAULT_TIMEOUT_S, bounded, checked_memory_limit, checked_timeout,
                                  settings)
from stores.snapshot import open_copy_for_reading

ALLOWED = "SELECT, WITH, DESCRIBE, SHOW, EXPLAIN, SUMMARIZE"

# Fixed at connect: lock_configuration makes every later SET or RESET of these an error.
# Autoloading is off too, so `sqlite_scan(...)` fails at once instead of trying to install.
SETTINGS = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
}


REFUSED = f"factory sql runs read-only statements only ({ALLOWED})"


class RefusedStatement(ValueError):
    """A statement factory sql will not run; the message is one line saying why."""
    exit_code = 2  # bad input: the statement is not run (factory/cli.py's codes)


def _tokens(query: str) -> list[tuple[int, duckdb.token_type, str]]:
    """(position, type, text) of each token but comments, from DuckDB's own tokenizer."""
    found = duckdb.tokenize(query)
    ends = [p for p, _ in found[1:]] + [len(query)]
    return [(p, t, query[p:end].strip()) for (p, t), end in zip(found, ends) if t != duckdb.token_type.comment]


def _type(statement: duckdb.Statement) -> duckdb.StatementType | None:
    try:
        return statement.type
    except ValueError:  # the Python API has no StatementType for some (UPDATE EXTENSIONS is 29)
        return None


def _kind(statement: duckdb.Statement) -> str:
    """COPY, or `LOAD (INSTALL ...)` when the first word is not the type DuckDB parsed it as."""
    kind = _type(statement)
    kind = "an unnamed statement type" if kind is None else kind.name
    tokens = _tokens(statement.query)
    first = tokens[0][2].upper() if tokens else ""
    return kind if first in ("", kind) else f"{kind} ({first} ...)"


def _explained(query: str) -> str | None:
    """What an EXPLAIN [ANALYZE] [(options)] statement explains. Tokens, not a regex: a
    parenthesis inside an option's string is not the end of the options."""
    tokens = _tokens(query)
    if not tokens or tokens[0][2].upper() != "EXPLAIN":
        return None
    i = 1
    if i < len(tokens) and tokens[i][2].upper() in ("ANALYZE", "ANALYSE"):
        i += 1
    if i < len(tokens) and tokens[i][1] == duckdb.token_type.operator and tokens[i][2].startswith("("):
        depth = 0
        while i < len(tokens):
            if tokens[i][1] == duckdb.token_type.operator:
                depth += tokens[i][2].count("(") - tokens[i][2].count(")")
            i += 1
            if depth <= 0:
                break
    return query[tokens[i][0]:] if i < len(tokens) else None


def _refusal(con, query: str, inside_explain: bool = False) -> str | None:
    """Why query is refused (one line), or None when it is one statement that only reads."""
    try:
        statements = con.extract_statements(query)
    except duckdb.ParserException:
        if inside_explain:
            return f"{REFUSED}; got an EXPLAIN whose statement could not be read"
        raise  # a typo: DuckDB's own message says where
    if not statements:
        return "factory sql needs one statement; got none (only blanks or comments)"
    if len(statements) > 1:
        kinds = ", ".join(_kind(s) for s in statements)
        return f"factory sql runs one statement at a time; got {len(statements)} ({kinds})"
    statement = statements[0]
    kind = _type(statement)
    if kind == duckdb.StatementType.SELECT:
        return None
    if kind == duckdb.StatementType.EXPLAIN and not inside_explain:
        inner = _explained(statement.query)
        if inner is None:
            return f"{REFUSED}; got an EXPLAIN whose statement could not be read"
        why = _refusal(con, inner, inside_explain=True)
        return None if why is None else why.replace("; got ", "; got EXPLAIN of ", 1)
    return f"{REFUSED}; got {_kind(statement)}"


def run_read_only(db: str | Path, query: str, timeout: float = DEFAULT_TIMEOUT_S, memory_limit: str | None = None,
                  on_stuck=None) -> tuple[list[str], list[tuple]]:
    """(column names, rows) of one read-only statement on the database file db.

    Raises RefusedStatement (a statement that is not a read, several statements, a file
    other than the database), StoreError (no such file, busy, damaged), QueryLimit (past
    `timeout` seconds or `memory_limit`, default a quarter of the machine; never a spill to
    disk: stores/query_limits.py) or the duckdb.Error of a read that fails (a typo, an
    unknown table). InvalidLimit (a ValueError) for a timeout or memory limit that is not
    one. The statement reads a private copy of db, or while a run writes db the run's
    snapshot, opened with the same SETTINGS, so that a query of any length never keeps a
    writer out (stores/snapshot.py, open_copy_for_reading)."""
    timeout, memory_limit = checked_timeout(timeout), checked_memory_limit(memory_limit)
    # DuckDB applies these in order: the limits after the access settings (temp_directory
    # first is refused, "Modifying the temp_directory has been disabled"), and before
    # lock_configuration, so that a SET in the query cannot lift them
    unlocked = {k: v for k, v in SETTINGS.items() if k != "lock_configuration"}
    con = open_copy_for_reading(db, config={**unlocked, **settings(memory_limit), "lock_configuration": True})
    try:
        why = _refusal(con, query)
        if why is not None:
            raise RefusedStatement(why)
        with bounded(con, timeout, memory_limit, on_stuck):
            try:
                con.execute(query)
            except duckdb.PermissionException as err:  # fence 2: a file, ATTACH or extension refused
                raise RefusedStatement(f"factory sql reads the database only: external file access is off "
                                       f"({str(err).splitlines()[0]})") from None
            if con.description is None:
                return [], []
            return [d[0] for d in con.description], con.fetchall()
    finally:
        con.close()
