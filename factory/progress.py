"""Progress of `factory run`: samples done / total, ETA, acceptance rate, tokens/s, outcomes.

On a terminal a live Rich bar. Anywhere else (CI, a log file, nohup: `console.is_terminal`
false) a Live bar cannot redraw, so Rich printed one truncated frame ("30/…") at the end and
nothing before; there we print one plain line every `every_s` seconds instead, and a summary
line at stop(). Lines are written from the pipeline's own calls (tokens() per completion,
batch() per committed batch), not from a timer thread: a run that makes no call in an
interval prints nothing for it, and tests drive it with a fake clock and no sleeps.
"""
from __future__ import annotations

import math
import os
import time
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

EVERY_S_ENV = "FACTORY_PROGRESS_EVERY_S"
DEFAULT_EVERY_S = 10.0  # a line per 10 s: ~360 lines for an hour-long run, enough to see it move


def every_s_from_env(default: float = DEFAULT_EVERY_S) -> float:
    raw = os.environ.get(EVERY_S_ENV)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):  # nan, inf and 0 would print never or always
        raise ValueError(f"{EVERY_S_ENV}: expected a number of seconds > 0, got {raw!r}")
    return value


def clock_text(seconds: float | None) -> str:
    """H:MM:SS like Rich's elapsed column; '--:--:--' while unknown."""
    if seconds is None:
        return "--:--:--"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class RichProgress:
    def __init__(self, console: Console | None = None, every_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.console = console or Console(stderr=True)
        self.every_s = every_s_from_env() if every_s is None else float(every_s)
        if not (math.isfinite(self.every_s) and self.every_s > 0):
            raise ValueError(f"progress every_s: expected a number of seconds > 0, got {every_s!r}")
        self.clock = clock
        self.counts = {"accepted": 0, "rejected": 0, "adjudicated": 0, "dropped": 0}
        self.completion_tokens = 0
        self.total = 0
        self.done_before = 0  # samples a resumed run found done: not part of this run's rate
        self.done = 0
        self._started = clock()
        self._last_line = self._started
        self._plain = not self.console.is_terminal
        self._bar: Progress | None = None
        self._task = None

    # -- the numbers, shared by the bar and the plain lines --------------------------------

    def _elapsed(self) -> float:
        return max(self.clock() - self._started, 1e-9)

    def _eta_s(self) -> float | None:
        """Remaining samples / samples per second of this run (resumed ones excluded)."""
        this_run = self.done - self.done_before
        if self.done >= self.total:
            return 0.0
        if this_run <= 0:
            return None
        return (self.total - self.done) / (this_run / self._elapsed())

    def _acceptance(self) -> str:
        # Every seed ends accepted, rejected or dropped; adjudicated ones are also one of
        # the first two, so they are not counted again.
        decided = self.counts["accepted"] + self.counts["rejected"] + self.counts["dropped"]
        if decided == 0:
            return "accept --"
        return f"accept {self.counts['accepted'] / decided:.0%} ({self.counts['accepted']}/{decided})"

    def _tok_per_s(self) -> str:
        return f"{self.completion_tokens / self._elapsed():,.0f} tok/s"

    def _fields(self) -> dict:
        return {"rate": self._tok_per_s(), "eta": f"ETA {clock_text(self._eta_s())}",
                "acceptance": self._acceptance(), **self.counts}

    def _line(self) -> str:
        c = self.counts
        return (f"samples {self.done}/{self.total} | ETA {clock_text(self._eta_s())} | {self._acceptance()} | "
                f"{self._tok_per_s()} | {c['accepted']} accepted, {c['rejected']} rejected, "
                f"{c['adjudicated']} adjudicated, {c['dropped']} dropped | elapsed {clock_text(self._elapsed())}")

    def _emit(self, text: str) -> None:
        # soft_wrap: one physical line however narrow the (non-)terminal says it is.
        self.console.print(text, soft_wrap=True, markup=False, highlight=False)

    def _update(self, advance: int = 0) -> None:
        if self._plain:
            now = self.clock()
            if now - self._last_line >= self.every_s:
                self._last_line = now
                self._emit(self._line())
        elif self._task is not None:
            self._bar.update(self._task, advance=advance, **self._fields())

    # -- what the pipeline calls ---------------------------------------------------------

    def start(self, total: int, done: int) -> None:
        self.total, self.done_before, self.done = total, done, done
        self._started = self._last_line = self.clock()
        if self._plain:
            return
        self._bar = Progress(
            TextColumn("[bold]samples"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[eta]}"),
            TextColumn("{task.fields[acceptance]}"), TextColumn("{task.fields[rate]}"),
            TextColumn("[green]{task.fields[accepted]} accepted[/] [red]{task.fields[rejected]} rejected[/] "
                       "[yellow]{task.fields[adjudicated]} adjudicated[/] {task.fields[dropped]} dropped"),
            TimeElapsedColumn(), console=self.console, transient=False, get_time=self.clock,
        )
        self._task = self._bar.add_task("run", total=total, completed=done, **self._fields())
        self._bar.start()

    def tokens(self, n: int) -> None:
        self.completion_tokens += n
        self._update()

    def batch(self, samples: int, outcomes: dict) -> None:
        for k, v in outcomes.items():
            self.counts[k] += v
        self.done += samples
        self._update(advance=samples)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.update(self._task, **self._fields())
            self._bar.stop()
            return
        if self._plain:
            c = self.counts
            self._emit(f"finished: samples {self.done}/{self.total} ({self.done - self.done_before} this run) in "
                       f"{clock_text(self._elapsed())} | {self._acceptance()} | {self._tok_per_s()}, "
                       f"{self.completion_tokens:,} completion tokens | {c['accepted']} accepted, "
                       f"{c['rejected']} rejected, {c['adjudicated']} adjudicated, {c['dropped']} dropped")
