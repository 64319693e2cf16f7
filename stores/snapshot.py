"""Watching a running job: the driver keeps a read-only copy of its database next to it
(`<db>.snapshot.duckdb`), and `factory stats` / `factory sql` read that copy while the driver
holds the file (DuckDB lets no other process open a file that one has open read-write).

Why a copy and not a socket into the driver: a query answered by the driver would run on
its read-write connection, where read_only_sql's second fence (external access off,
configuration locked) cannot be set without taking file access from the driver itself; a
copy is opened by the reader exactly as the database is, with the same settings. The copy
is DuckDB's own `COPY FROM DATABASE`, one transaction, so it holds whole batches only
(committed rows), whatever the executor threads write meanwhile; a byte copy of the file
after a CHECKPOINT is ~20x cheaper but is whole only if nothing writes during the copy.
Besides the rate-limited refreshes, the run copies after the first committed batch of each
in-flight group and after its last batch (factory/pipeline.py), so rows show within one
batch of their commit whatever the layout.
Measured here (2 shared cores): 0.03 s for an empty job's database, 0.12-0.14 s for 2,600
samples with 10,600 cached completions (6.8 MB), 0.45 s for 20,600 samples (25 MB).

Written to a temporary name, closed (DETACH checkpoints it: no .wal is left) and renamed
into place, so a reader opens either the previous snapshot or the new one, never half a
file. The run writes the first one right after opening the database (before its engines
start; a marker <db>.run-starting.<pid>, written before it opens the database and removed
after that first copy, tells a reader to wait for it) and removes it when it ends, however
it ends, only after its engines have stopped and it has closed the database: from then on
the database itself is free to read (a reader that saw the database held and then no
snapshot looks again), and a leftover copy (a run killed with -9) is not taken for a
running job's, because a reader uses a snapshot only when the process holding the
database is the one that wrote it.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from stores.connection import (Connection, DatabaseInUse, StoreError, copying_marker, open_database,
                               wait_while_marked)

log = logging.getLogger(__name__)

SUFFIX = ".snapshot.duckdb"
# At most this share of the run's time goes to refreshes: after a refresh that took c
# seconds the next waits at least c * (1 - SHARE) / SHARE (19 c): 0.14 s -> 2.7 s, 0.45 s -> 8.6 s.
SHARE = 0.05
# ... and at least this long, so a job of fast batches does not copy a small file every 0.2 s.
EVERY_S = 2.0
_ALIAS = "factory_snapshot_out"
# A reader looks at db, then at the snapshot, this many times: a run ending between the two
# looks has released db by the next one.
ATTEMPTS = 3
INFO = "factory_snapshot.info"  # one row in the copy: when it was taken and by which process


def snapshot_path(db: str | Path) -> Path:
    db = Path(db)
    return db.with_name(db.name + SUFFIX)


def _remove(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SnapshotWriter:
    """The driver's side: refresh() after each committed batch (rate-limited), close() at the end."""

    def __init__(self, con: Connection, db: str | Path, every_s: float = EVERY_S, share: float = SHARE,
                 clock=time.monotonic):
        self.con = con
        self.path = snapshot_path(db)
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        self.every_s, self.share, self.clock = every_s, share, clock
        self.next_at = float("-inf")
        self.refreshes = 0
        self.seconds = 0.0  # spent refreshing, all refreshes together
        self.failed = False

    @classmethod
    def of(cls, store) -> "SnapshotWriter":
        """The writer of a run's store (stores/store.py's Store), read through its connection."""
        return cls(store.con, store.path)

    def refresh(self, force: bool = False) -> bool:
        """Copy the committed database to the snapshot unless the last copy was too recent
        (force: copy anyway). True when a copy was made. A failure (a full disk) is one
        warning line and no snapshot, never the run's end: watching is not worth a job."""
        start = self.clock()
        if not force and start < self.next_at:
            return False
        try:
            self._copy()
        except (duckdb.Error, OSError) as err:
            if not self.failed:
                log.warning("could not refresh the snapshot %s (%s); factory stats and sql cannot read the database "
                            "until the run ends", self.path, str(err).splitlines()[0])
            self.failed = True
            _remove(self.tmp)
            _remove(self.path)  # a stale copy would be read as the current one
            return False
        finally:
            cost = self.clock() - start
            self.seconds += cost
            self.next_at = start + cost + max(self.every_s, cost * (1 - self.share) / self.share)
        self.refreshes += 1
        return True

    def _copy(self) -> None:
        _remove(self.tmp)  # left by a run killed mid-copy
        taken_at = datetime.now(timezone.utc)
        source = self.con.execute("SELECT current_database()").fetchone()[0]
        self.con.execute(f"ATTACH '{str(self.tmp).replace(chr(39), chr(39) * 2)}' AS {_ALIAS}")
        try:
            self.con.execute(f"COPY FROM DATABASE {_quoted(source)} TO {_ALIAS}")
            self.con.execute(f"CREATE SCHEMA {_ALIAS}.factory_snapshot")
            self.con.execute(f"CREATE TABLE {_ALIAS}.{INFO} AS SELECT ?::TIMESTAMPTZ AS taken_at, "
                             f"?::INTEGER AS writer_pid", [taken_at, os.getpid()])
        finally:
            self.con.execute(f"DETACH {_ALIAS}")
        os.replace(self.tmp, self.path)

    def close(self) -> None:
        """The run is over: readers read the database itself from now on."""
        _remove(self.tmp)
        _remove(self.path)


@dataclass(frozen=True)
class SnapshotInfo:
    path: Path
    taken_at: datetime
    writer_pid: int

    def as_dict(self) -> dict:
        """What `stats --json` adds under "snapshot"."""
        return {"path": str(self.path), "taken_at": self.taken_at.isoformat(), "writer_pid": self.writer_pid}


def _open_snapshot(db: Path, holder: int | None, config: dict | None) -> Connection | None:
    """The snapshot written by the process holding db, opened read-only with config; None
    when there is none, or it is another process's leftover."""
    path = snapshot_path(db)
    if not path.exists():
        return None
    try:
        con = open_database(path, read_only=True, config=config)
    except StoreError:  # removed in between (the run just ended) or being replaced
        return None
    try:
        taken_at, writer_pid = con.execute(f"SELECT taken_at, writer_pid FROM {INFO}").fetchone()
    except duckdb.Error:
        con.close()
        return None  # not a file this module wrote
    if holder is not None and holder != writer_pid:
        con.close()
        return None
    con.snapshot = SnapshotInfo(path, taken_at.astimezone(timezone.utc), writer_pid)
    return con


STARTING = ".run-starting."
START_WAIT_S = 600.0  # a cutoff for a start that never ends, not an expected time


def starting_marker(db: str | Path, pid: int) -> Path:
    """Written by a run before it opens db, removed once its first snapshot is in place (or
    it ends): a reader that finds db held by that PID and no snapshot waits for it."""
    db = Path(db)
    return db.with_name(f"{db.name}{STARTING}{pid}")


def _wait_for_first_snapshot(db: Path, pid: int | None) -> bool:
    """True when pid is a run starting on db, after it wrote its first snapshot or ended (a
    leftover snapshot is no sign, so the run's starting marker is what is waited on)."""
    return pid is not None and wait_while_marked(starting_marker(db, pid), pid, START_WAIT_S, clock=time)


def open_for_reading(db: str | Path, config: dict | None = None) -> Connection:
    """A read-only connection to db; while a run writes db, to the run's latest snapshot
    (con.snapshot says when it was taken, and one line on stderr says so). Without a
    snapshot, the "in use by another process" StoreError (DuckDB allows one writer process)."""
    attempts = waits = 0
    while True:
        try:
            return open_database(db, read_only=True, config=config)
        except DatabaseInUse as busy:
            con = _open_snapshot(Path(db), busy.pid, config)
            if con is not None:
                break
            if waits < ATTEMPTS and _wait_for_first_snapshot(Path(db), busy.pid):
                waits += 1  # a run that had opened db but not yet written its first snapshot
                continue
            attempts += 1
            if attempts == ATTEMPTS:
                raise
            # No snapshot of the holder's: a run that closed db and removed its snapshot
            # between the two looks (it removes it only after closing db), so db is free now.
    info = con.snapshot
    log.warning("database %s is being written by a running job (PID %s); reading its snapshot from %s",
                db, info.writer_pid, info.taken_at.astimezone().strftime("%H:%M:%S"))
    return con


class _Copy(Connection):
    """A connection to a private copy of a database: closing it removes the copy."""

    def __init__(self, con: Connection, db: Path, copy: Path, folder: Path):
        super().__init__(con._con, copy)
        self._db, self._folder = db, folder

    def _checked(self, call, *args, **kwargs):
        try:
            return super()._checked(call, *args, **kwargs)
        except StoreError as err:  # a damaged block: named as the database's, not the copy's
            raise StoreError(str(err).replace(str(self._path), str(self._db))) from None

    def close(self) -> None:
        try:
            self._con.close()
        finally:
            shutil.rmtree(self._folder, ignore_errors=True)

    def __exit__(self, *exc) -> None:
        self.close()


def open_copy_for_reading(db: str | Path, config: dict | None = None) -> Connection:
    """What `factory sql` reads, so that a query of any length never keeps a writer out
    (DuckDB lets no process open a file read-write while another has it open, read-only
    included): while a run writes db, its snapshot (open_for_reading); otherwise a private
    byte copy of db (and its .wal) in the temporary directory, made while holding db
    read-only (so no writer changes it mid-copy) under a marker naming this process, which
    tells a writer that arrives meanwhile to wait for the copy instead of failing "in use"
    (stores/connection.py). The copy goes when the connection closes."""
    db = Path(db)
    marker = copying_marker(db, os.getpid())
    folder = None
    try:
        if db.exists():
            marker.write_text(f"{os.getpid()}\n")
        try:
            held = open_database(db, read_only=True)
        except DatabaseInUse:
            held = None
        if held is None:
            marker.unlink(missing_ok=True)
            return open_for_reading(db, config)  # a run holds db: its snapshot
        try:
            folder = Path(tempfile.mkdtemp(prefix="factory-sql-"))
            copy = folder / db.name
            shutil.copyfile(db, copy)
            wal = db.with_name(db.name + ".wal")
            if wal.exists():
                shutil.copyfile(wal, copy.with_name(copy.name + ".wal"))
        finally:
            held.close()
    except BaseException:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        marker.unlink(missing_ok=True)
    try:
        con = open_database(copy, read_only=True, config=config)
    except StoreError as err:
        shutil.rmtree(folder, ignore_errors=True)
        raise StoreError(str(err).replace(str(copy), str(db))) from None
    return _Copy(con, db, copy, folder)
