"""Train several runs of one distillation at once, one process each (`parallel_runs: N`).

Why processes: the tiny students of the demo are too small for torch's threads to pay off.
On 2 cores, two runs of one thread each use both cores where one run of two threads used
~1.4 of them (docs/benchmarks.md, "parallel runs"). Each worker trains and evaluates and
sends back the rows to record; only this process writes the database, so DuckDB's single
writer lock is never contended and a run is recorded whole or not at all, as before.

A worker whose parent died (kill -9 of `factory distill`) stops at its next optimizer step
instead of training on as an orphan that a rerun would race for the same checkpoints."""
from __future__ import annotations

import contextlib
import multiprocessing
import os
from multiprocessing import resource_tracker
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed


class ParentGone(RuntimeError):
    """The process that started this worker is gone: stop training, record nothing."""
    exit_code = 1  # a runtime problem (factory/cli.py's codes); nobody is left to read it but a log


def _stop_if_orphaned(parent: int) -> Callable:
    def on_step(step: int, total: int, loss: float) -> None:
        if os.getppid() != parent:
            raise ParentGone(f"the parent process {parent} is gone: stopped at step {step} of {total}")
    return on_step


@contextlib.contextmanager
def _own_resource_tracker():
    """Spawned pools start multiprocessing's resource tracker, a child that would otherwise
    outlive the distillation for the rest of the caller's process (the sandbox tests find
    it as a leftover child). Stopped here if this call started it: it tracks the pool's
    semaphores only. _stop is private but present from Python 3.8 to 3.13."""
    tracker = resource_tracker._resource_tracker
    ours = getattr(tracker, "_fd", None) is None
    try:
        yield
    finally:
        if ours and getattr(tracker, "_fd", None) is not None and hasattr(tracker, "_stop"):
            tracker._stop()


def _work(train_one: Callable, task, parent: int, threads: int | None):
    import torch

    if threads:  # evaluation too: torch's default is every core, and N workers share them
        torch.set_num_threads(threads)
    return train_one(task, on_step=_stop_if_orphaned(parent))


def train_in_processes(train_one: Callable, tasks: list, workers: int, threads: int | None,
                       record: Callable, progress) -> None:
    """train_one: a module-level function (it travels to the workers by name), run.py's
    train_and_evaluate; tasks: its first argument, one run.py RunTask per run, started in
    the order given (the caller puts the longest first). Each finished
    run is recorded (record(run, evals, summary)) as soon as it is back; a run that fails
    does not stop the others, and the first failure is raised once every run has ended."""
    failures = []
    spawn = multiprocessing.get_context("spawn")  # no fork of a process that holds DuckDB and torch state
    with _own_resource_tracker(), ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
        pending = {pool.submit(_work, train_one, task, os.getpid(), threads): task for task in tasks}
        for future in as_completed(pending):
            try:
                run, evals, summary = future.result()
            except Exception as err:  # noqa: BLE001 - every run is waited for; the first failure is raised below
                failures.append(err)
                continue
            record(run, evals, summary)
            value = "-" if summary.value is None else f"{summary.value:.3f}"
            progress.stage(f"{summary.mixture} (seed {summary.seed}): {summary.metric} {value}")
    if failures:
        raise failures[0]
