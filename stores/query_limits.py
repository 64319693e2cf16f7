"""Time and memory bounds of `factory sql` / `factory.sql()` (issue 23 A).

Without them `WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM t) SELECT count(*)
FROM t` ran until killed, with DuckDB's defaults: 80% of the machine's memory, then spill
to `<db>.tmp` up to 90% of the disk. Now:
- time: a watchdog thread calls con.interrupt() at the limit (DuckDB checks for it between
  chunks of work); a query stuck inside one function call that never looks can, for the CLI,
  end the process a grace period later with the same line (`on_stuck`);
- memory: DuckDB's memory_limit, by default a quarter of the machine;
- disk: temp_directory '' turns spilling off, so nothing like `<db>.tmp` is ever made: a
  query that needs more memory than its limit stops instead of filling the disk.
Past a limit: QueryLimit, one line naming the limit (the CLI exits 1).
"""
from __future__ import annotations

import os
import re
import threading
from contextlib import contextmanager

import duckdb

DEFAULT_TIMEOUT_S = 30.0
MEMORY_SHARE = 0.25  # of the machine: a reader must leave room for the run it watches
MIN_MEMORY_BYTES = 256 * 2**20  # below this DuckDB cannot even read a few tables
STUCK_GRACE_S = 5.0  # after the interrupt, how long a query may take to notice it
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.I)


class QueryLimit(RuntimeError):
    """A query stopped at its time or memory limit; the message is one line naming it."""
    exit_code = 1  # a runtime problem (factory/cli.py's codes)


class InvalidLimit(ValueError):
    """A --timeout or --memory-limit that is not one; the message names what is allowed."""
    exit_code = 2  # bad input: the query is not run


def default_memory_limit() -> str:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # no sysconf: a small fixed default
        total = 4 * 2**30
    return f"{max(MIN_MEMORY_BYTES, int(total * MEMORY_SHARE)) // 2**20}MiB"


def checked_memory_limit(text: str | None) -> str:
    """A DuckDB size ("2GB", "512MiB"), or InvalidLimit naming what is allowed."""
    if text is None:
        return default_memory_limit()
    m = _SIZE.match(str(text))
    if not m or float(m[1]) <= 0:
        raise InvalidLimit(f"--memory-limit: a size such as 512MB or 2GiB (got {text!r})")
    return f"{m[1]}{m[2]}"


def checked_timeout(seconds) -> float:
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise InvalidLimit(f"--timeout: seconds > 0, such as 30 or 2.5 (got {seconds!r})")
    return value


def settings(memory_limit: str) -> dict:
    """Connection settings fixed at connect (the caller adds lock_configuration)."""
    return {"memory_limit": memory_limit, "temp_directory": ""}


def timeout_line(seconds: float) -> str:
    return (f"factory sql: stopped at the time limit of {seconds:g} s (--timeout {seconds:g}): "
            "narrow the query or raise --timeout")


def memory_line(limit: str) -> str:
    return (f"factory sql: stopped at the memory limit of {limit} (--memory-limit {limit}; no spill to disk): "
            "narrow the query or raise --memory-limit")


@contextmanager
def bounded(con, seconds: float, memory_limit: str, on_stuck=None):
    """Run the block under the time limit; DuckDB's interrupt and out-of-memory errors come
    out as QueryLimit. on_stuck(line) is called when the interrupt went unnoticed for
    STUCK_GRACE_S (the CLI prints the line and exits; a library caller cannot be killed)."""
    done = threading.Event()

    def watch():
        if done.wait(seconds):
            return
        con.interrupt()
        if not done.wait(STUCK_GRACE_S) and on_stuck is not None:
            on_stuck(timeout_line(seconds))

    watchdog = threading.Thread(target=watch, name="factory-sql-watchdog", daemon=True)
    watchdog.start()
    try:
        yield
    except duckdb.InterruptException:
        raise QueryLimit(timeout_line(seconds)) from None
    except duckdb.OutOfMemoryException:
        raise QueryLimit(memory_line(memory_limit)) from None
    finally:
        done.set()
