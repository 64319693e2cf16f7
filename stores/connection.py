"""Opening the DuckDB file: one writer (the driver), clear messages when it is busy or damaged."""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import duckdb


class StoreError(RuntimeError):
    """A one-line, user-facing store problem."""
    exit_code = 1  # a runtime problem (factory/cli.py's codes)


class DatabaseInUse(StoreError):
    """Another process has the file open read-write (a running job): pid is that process's,
    when DuckDB names it. stores/snapshot.py reads the running job's snapshot instead."""
    exit_code = 1  # a runtime problem (factory/cli.py's codes)

    def __init__(self, message: str, pid: int | None):
        super().__init__(message)
        self.pid = pid


# DuckDB's words for a file that is not (or no longer) a database it can read: a wrong or
# zeroed header ("not a valid DuckDB database file"), a block whose checksum does not match
# (a flipped bit), a block past the end of the file (a truncated copy).
_DAMAGED = re.compile(r"not a valid DuckDB database file|Corrupt database file|Could not read enough bytes from file",
                      re.IGNORECASE)
_QUOTED = re.compile(r'"([^"]+)"')
# "Could not set lock on file ... Conflicting lock is held": a word match, so a checksum
# error's "in block at location 4096" is not taken for a lock.
_LOCK = re.compile(r"\block\b", re.IGNORECASE)


def _damaged(path: Path, err: duckdb.Error) -> StoreError | None:
    """The one-line StoreError when err says the database file itself is damaged, else None."""
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    if not _DAMAGED.search(first):
        return None
    named = _QUOTED.search(first)
    if named and Path(named.group(1)).resolve() != path.resolve():
        return None  # another file (a short CSV read by a query): not this database's problem
    return StoreError(f"database {path} is not a readable DuckDB file ({first})")


def _explain(path: Path, err: duckdb.Error) -> StoreError:
    damaged = _damaged(path, err)
    if damaged is not None:
        return damaged
    text = str(err)
    if _LOCK.search(text):
        pid = re.search(r"PID (\d+)", text)
        who = f" (PID {pid.group(1)})" if pid else ""
        return DatabaseInUse(f"database {path} is in use by another process{who}: wait for it to finish or use another "
                             f"--db", int(pid.group(1)) if pid else None)
    return StoreError(f"cannot open database {path}: {text.splitlines()[0]}")


class Connection:
    """A DuckDB connection that turns "this file is damaged" into one StoreError naming the file.

    DuckDB checks the header and the catalog at connect but reads data blocks lazily, so a
    flipped bit in a table's block or a truncated tail shows first in whatever query touches
    it (migrate's first SELECT, the first stats query). Every call goes through `_checked`;
    everything else (description, fetch*, register, begin/commit) is the wrapped
    connection's. execute returns this wrapper, so `con.execute(...).fetchall()` is checked too.
    """

    snapshot = None  # a SnapshotInfo when this reads a running job's snapshot (stores/snapshot.py)

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path):
        self._con = con
        self._path = path

    def _checked(self, call, *args, **kwargs):
        try:
            return call(*args, **kwargs)
        except duckdb.Error as err:
            damaged = _damaged(self._path, err)
            if damaged is None:
                raise
            raise damaged from err

    def execute(self, *args, **kwargs) -> "Connection":
        self._checked(self._con.execute, *args, **kwargs)
        return self

    def executemany(self, *args, **kwargs) -> "Connection":
        self._checked(self._con.executemany, *args, **kwargs)
        return self

    def __getattr__(self, name: str):
        attr = getattr(self._con, name)
        if not callable(attr):
            return attr

        def checked(*args, **kwargs):
            return self._checked(attr, *args, **kwargs)

        return checked

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc) -> None:
        self._con.close()


# `factory sql` holds a database only while it copies it (stores/snapshot.py, open_copy_for_reading),
# under this marker naming its PID: a writer that finds the file held by that PID waits for
# the marker to go (or the PID to die) and tries again, instead of failing "in use".
COPYING = ".sql-copy."
COPY_WAIT_S = 600.0  # a cutoff for a copy that never ends, not an expected time


def copying_marker(path: str | Path, pid: int) -> Path:
    path = Path(path)
    return path.with_name(f"{path.name}{COPYING}{pid}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_while_marked(marker: Path, pid: int | None, cutoff_s: float, clock=None) -> bool:
    """True when `marker` (a file naming the holder's PID) existed: it was waited out, or its
    PID died, or cutoff_s passed; False when there was nothing to wait for. clock: what
    gives monotonic() and sleep() (the caller's module, so its tests can watch the wait)."""
    if pid is None or not marker.exists():
        return False
    clock = clock or time  # looked up at the call: a test may swap this module's `time`
    deadline = clock.monotonic() + cutoff_s
    while marker.exists() and _alive(pid) and clock.monotonic() < deadline:
        clock.sleep(0.02)
    return True


def _wait_for_copy(path: Path, pid: int | None) -> bool:
    """True when pid was copying path (`factory sql`) and is done: try the open again."""
    return pid is not None and wait_while_marked(copying_marker(path, pid), pid, COPY_WAIT_S)


def open_database(path: str | Path, read_only: bool = False, config: dict | None = None) -> Connection:
    """config: DuckDB settings fixed at connect (read_only_sql.py turns off file access)."""
    path = Path(path)
    if read_only and not path.exists():
        raise StoreError(f"no database at {path}: run a job first, or pass --db")
    for _ in range(20):  # several `factory sql` copying at once: one wait each
        try:
            return Connection(duckdb.connect(str(path), read_only=read_only, config=config or {}), path)
        except duckdb.Error as err:
            explained = _explain(path, err)
        if not (isinstance(explained, DatabaseInUse) and _wait_for_copy(path, explained.pid)):
            break
    raise explained from None
