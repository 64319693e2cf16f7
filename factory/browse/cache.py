"""Values the browse pages compute from one state of the database (the summary, the funnel
page's histograms), kept until that state changes: per state, not per time, so a page never
shows numbers older than the rows beside them.

A state is what a request opened: the running job's snapshot, named by when it was taken
and by whom (the info row inside it, so it cannot disagree with the rows), or the database
file itself, named by its size, modification time and inode and its .wal's. The database
cannot change while a request reads it: its read-only connection keeps writers out, so the
file's stat taken then names what was read. A label saved here changes the file too, and the
summary is recomputed once after it (0.1-0.2 s at 1M samples).
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

KEEP = 16  # (state, name) pairs: a few jobs' histograms across the last two or three states


def state(db: Path, con) -> tuple:
    info = con.snapshot
    if info is not None:
        return "snapshot", str(info.path), info.taken_at.isoformat(), info.writer_pid

    def stat(path: Path) -> tuple:
        try:
            st = path.stat()
        except FileNotFoundError:
            return ()
        return st.st_size, st.st_mtime_ns, st.st_ino

    return "database", str(db), stat(db), stat(db.with_name(db.name + ".wal"))


class StateCache:
    """get(key, compute): compute() once per key, the KEEP most recent kept. Callers hold the
    app's read lock, so one thread at a time."""

    def __init__(self, keep: int = KEEP):
        self.keep = keep
        self._items: OrderedDict = OrderedDict()
        self.computed = 0  # how many times compute ran (a test checks a second page reuses the first's)

    def get(self, key: tuple, compute):
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = compute()
        self.computed += 1
        self._items[key] = value
        while len(self._items) > self.keep:
            self._items.popitem(last=False)
        return value

