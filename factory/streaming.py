"""The batch loop of `factory run` (run_batches), its depth execution.batches_in_flight.

At a depth over 1, up to N batches run their steps at once, each on its own
driver thread with its own BatchState, so an engine has another batch's requests queued
while one batch's rows are written, its programs run in the sandbox or its driver-side
steps (dedup, rules, decide) run. With 1 batch in flight a batching engine idles for all
of those (issue 13: on a GPU that is most of the card).

What stays as with one batch at a time, and why it holds here:
- The driver is DuckDB's only writer and a batch's rows commit with its done-marks in one
  transaction, from this (the main) thread, in batch order: the done seeds of a killed run
  are a prefix of its batches, and a rerun starts at the first uncommitted one.
- Each batch thread reads and writes through its own cursor (stores/batch_store.py: a
  DuckDB connection's last result and open transaction belong to the connection: two
  threads on one read each other's results). Every write transaction (completions cache,
  likelihood cache, a batch's rows, the snapshot copy) holds one lock, so no two overlap:
  two concurrent inserts of the same key would conflict under DuckDB's optimistic
  concurrency.
- Exact dedup gives the same rows: a batch's look-up of earlier samples waits until every
  earlier batch has passed its own look-up step (they run at about the same time, so it
  waits little), then sees the committed samples plus those earlier batches' kept samples
  (DedupLedger), the first by seed index winning as in the store's query.
- The budget is one (locked) Budget; an admission refused while other batches' requests
  hold reservations waits for them to settle instead of stopping the job (factory/calls.py).
- Progress calls are serialized (SerialProgress); engines are guarded by their executors
  (a lock per local engine; Ray actors run one call at a time).
"""
from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

from stores.batch_store import BatchStore, batch_store
from stores.store import Store


class Stopped(RuntimeError):
    """Another batch failed: this one ends after its current step (what it cached stays)."""
    exit_code = 1  # a runtime problem (factory/cli.py's codes)


class DedupLedger:
    """The kept (not duplicate) samples of this run's batches that have passed their dedup
    look-up, by batch position; a look-up waits for every earlier position."""

    def __init__(self):
        self._cond = threading.Condition()
        self._published: set[int] = set()
        self._first: dict[str, tuple[int, str]] = {}  # content hash -> (seed index, sample id), smallest

    def earlier(self, position: int, stop: threading.Event) -> dict[str, tuple[int, str]]:
        with self._cond:
            while not all(p in self._published for p in range(position)):
                if stop.is_set():
                    raise Stopped("another batch failed")
                self._cond.wait(timeout=1.0)  # stop is set without notifying this condition
            return dict(self._first)

    def publish(self, position: int, samples: list[dict]) -> None:
        with self._cond:
            if position in self._published:
                return
            for row in samples:
                if row.get("duplicate_of") is None:
                    key, mine = row["content_hash"], (row["seed_index"], row["sample_id"])
                    self._first[key] = min(self._first.get(key, mine), mine)
            self._published.add(position)
            self._cond.notify_all()


class SerialProgress:
    """A progress reporter called from several threads, one call at a time."""

    def __init__(self, progress):
        self._progress, self._lock = progress, threading.Lock()

    def __getattr__(self, name: str):
        method = getattr(self._progress, name)

        def serial(*args, **kwargs):
            with self._lock:
                return method(*args, **kwargs)

        return serial


def run_batches(store: Store, batches: list[list[int]], depth: int, make_context: Callable, run_batch: Callable,
                commit: Callable) -> None:
    """The batch loop of `factory run`: start `batches` (lists of seed indices) in order until
    `depth` of them are started and not committed, then commit the oldest on this thread, so
    commits keep batch order. make_context(store) -> a Context; run_batch(ctx, indices,
    between) -> BatchRows, calling between(state) after each step when it is not None;
    commit(batch) writes it (under the write lock).

    depth (execution.batches_in_flight) is how a started batch runs: at 1 it runs as it is
    started, here, through `store` and one Context for all; deeper, each on a batch thread
    through a cursor of its own (stores/batch_store.py) and a Context of its own, its dedup
    look-up seeing earlier batches (DedupLedger), ending after its current step when
    another fails."""
    lock, ledger, stop = threading.Lock(), DedupLedger(), threading.Event()
    here = make_context(store) if depth == 1 else None

    def view_of(position: int) -> tuple[BatchStore, list[bool]]:
        looked_up = [False]

        def earlier() -> dict[str, tuple[int, str]]:
            looked_up[0] = True
            return ledger.earlier(position, stop)

        return batch_store(store, lock, earlier), looked_up

    def one(position: int, indices: list[int], view: BatchStore, looked_up: list[bool]):
        ctx = make_context(view)
        rows: list[dict] = []

        def between(state) -> None:
            rows[:] = state.batch.rows["samples"]
            if looked_up[0]:  # the step that asked for earlier samples has made this batch's
                ledger.publish(position, rows)
            if stop.is_set():
                raise Stopped("another batch failed")

        try:
            return run_batch(ctx, indices, between)
        finally:
            ledger.publish(position, rows)  # no look-up (or a failure): later batches need not wait on it
            view.close()

    def start(position: int, indices: list[int]) -> tuple[Future, BatchStore | None]:
        if here is not None:  # nothing else in flight: the batch runs now, on this thread
            ran: Future = Future()
            ran.set_result(run_batch(here, indices))
            return ran, None
        view, looked_up = view_of(position)  # its cursor is made on this thread
        return pool.submit(one, position, indices, view, looked_up), view

    def commit_oldest() -> None:
        batch = pending.popleft()[0].result()  # the oldest: commits stay in batch order
        with lock:
            commit(batch)

    pending: deque = deque()
    with ThreadPoolExecutor(depth, thread_name_prefix="factory-batch") as pool:
        try:
            for position, indices in enumerate(batches):
                pending.append(start(position, indices))
                if len(pending) == depth:
                    commit_oldest()
            while pending:
                commit_oldest()
        except BaseException:
            stop.set()  # running batches end after their current step; queued ones never start
            for future, view in pending:
                if future.cancel():
                    view.close()
            raise
