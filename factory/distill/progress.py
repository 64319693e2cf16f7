"""Progress of a distillation on stderr: a line per stage, a bar per training run."""
from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class RichDistillProgress:
    def __init__(self, console: Console):
        self.console = console
        self.bar: Progress | None = None
        self.task = None

    def stage(self, text: str) -> None:
        self.done()
        self.console.print(text, soft_wrap=True)

    def step(self, step: int, total: int, loss: float) -> None:
        if self.bar is None:
            self.bar = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("loss {task.fields[loss]:.3f}"), TimeElapsedColumn(),
                                console=self.console, transient=True)
            self.bar.start()
            self.task = self.bar.add_task("train", total=total, loss=loss)
        self.bar.update(self.task, completed=step, total=total, loss=loss)

    def done(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar, self.task = None, None
