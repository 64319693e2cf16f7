"""The live progress bar of `factory run`: samples, tokens/s, accepted / rejected / adjudicated."""
from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class RichProgress:
    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.counts = {"accepted": 0, "rejected": 0, "adjudicated": 0, "dropped": 0}
        self.completion_tokens = 0
        self._started = time.perf_counter()
        self._bar = Progress(
            TextColumn("[bold]samples"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]} tok/s"),
            TextColumn("[green]{task.fields[accepted]} accepted[/] [red]{task.fields[rejected]} rejected[/] "
                       "[yellow]{task.fields[adjudicated]} adjudicated[/] {task.fields[dropped]} dropped"),
            TimeElapsedColumn(), console=self.console, transient=False,
        )
        self._task = None

    def _fields(self) -> dict:
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        return {"rate": f"{self.completion_tokens / elapsed:.0f}", **self.counts}

    def start(self, total: int, done: int) -> None:
        self._started = time.perf_counter()
        self._task = self._bar.add_task("run", total=total, completed=done, **self._fields())
        self._bar.start()

    def tokens(self, n: int) -> None:
        self.completion_tokens += n
        if self._task is not None:
            self._bar.update(self._task, **self._fields())

    def batch(self, samples: int, outcomes: dict) -> None:
        for k, v in outcomes.items():
            self.counts[k] += v
        self._bar.update(self._task, advance=samples, **self._fields())

    def stop(self) -> None:
        self._bar.stop()
