"""The store as one batch thread sees it (execution.batches_in_flight > 1, factory/streaming.py).

Each batch thread reads and writes through its own cursor: a DuckDB connection's last result
and open transaction belong to the connection, so two threads on one would read each other's
results. Every write transaction (completions cache, likelihood cache) holds the run's one
write lock from begin to commit, so no two overlap: two concurrent inserts of the same key
would conflict under DuckDB's optimistic concurrency.
"""
from __future__ import annotations

import threading
from typing import Callable

from stores.connection import Connection
from stores.store import Store


class WriteLocked(Connection):
    """A batch thread's cursor whose transactions hold the store's write lock from begin()
    to commit() or rollback() (stores/transaction.py is the one way the store writes)."""

    def __init__(self, con, path, lock: threading.Lock):
        super().__init__(con, path)
        self._lock, self._held = lock, False

    def begin(self):
        self._lock.acquire()
        self._held = True
        try:
            return self._checked(self._con.begin)
        except BaseException:
            self._unlock()
            raise

    def commit(self):
        done = self._checked(self._con.commit)
        self._unlock()  # a failed commit keeps it: transaction() rolls back next, and that unlocks
        return done

    def rollback(self):
        try:
            return self._checked(self._con.rollback)
        finally:
            self._unlock()

    def _unlock(self) -> None:
        if self._held:
            self._held = False
            self._lock.release()


Earlier = Callable[[], dict[str, tuple[int, str]]]


class BatchStore(Store):
    """The run's store through a cursor of its own, made from it with batch_store(); its
    samples_by_hash also sees the kept samples of earlier batches still in flight."""

    def __init__(self, path, con: Connection, earlier: Earlier):
        # Not Store.__init__: no new database connection, no migration.
        self.path, self.con = path, con
        self._earlier = earlier

    def samples_by_hash(self, job: str, hashes: list[str]) -> dict[str, str]:
        """As Store's, plus earlier(): content hash -> (seed index, sample id) of the kept
        samples of earlier batches not yet committed; the first by seed index wins."""
        earlier = self._earlier()  # asked even for no hashes: it may wait for earlier batches
        if not hashes:
            return {}
        rows = self.con.execute(
            """SELECT content_hash, seed_index, sample_id FROM samples
               WHERE job = ? AND duplicate_of IS NULL AND content_hash IN (SELECT unnest(?))""",
            [job, list(hashes)],
        ).fetchall()
        best: dict[str, tuple[int, str]] = {}
        for key, index, sample in [*rows, *((h, *earlier[h]) for h in set(hashes) if h in earlier)]:
            best[key] = min(best.get(key, (index, sample)), (index, sample))
        return {key: sample for key, (_, sample) in best.items()}

    def close(self) -> None:
        self.con.close()  # the cursor only; the run's connection stays open


def batch_store(store: Store, lock: threading.Lock, earlier: Earlier) -> BatchStore:
    """One batch's form of `store` (called on the thread that owns store's connection): its
    own cursor, its write transactions under `lock`, its exact-dedup look-up also seeing
    earlier()."""
    return BatchStore(store.path, WriteLocked(store.con.cursor(), store.path, lock), earlier)
