"""The public shape of a step: what a plugin's verification or scoring step implements.

A step is built once per batch by its recipe's `steps()` (settings go to its constructor)
and runs over one batch: `run(ctx, state)`. It declares the BatchState fields it reads and
writes (STATE_FIELDS); `check_steps` refuses, before anything is written, a pipeline whose
step reads a field no earlier step writes. Rows go through the helpers of
factory/steps/context.py: add_signal, add_gate, add_verdict, add_drop (docs/plugins.md).
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from factory.steps.context import Context
from factory.steps.state import STATE_FIELDS, BatchState


@runtime_checkable
class Step(Protocol):
    reads: tuple[str, ...]
    writes: tuple[str, ...]

    def run(self, ctx: Context, state: BatchState) -> None: ...


class StepError(ValueError):
    """A recipe's pipeline that cannot run: one line naming the step and the field."""
    exit_code = 1  # a runtime problem (factory/cli.py's codes)


def check_steps(steps: list, recipe: str) -> None:
    """Each declared field is a BatchState field, and each field a step reads was written by
    an earlier step. A step without declarations (an older plugin's) is taken to read
    nothing and write everything."""
    written: set[str] = set()
    for n, step in enumerate(steps):
        name = f"recipe {recipe}: steps()[{n}] {type(step).__name__}"
        if not callable(getattr(step, "run", None)):
            raise StepError(f"{name}: a step needs run(ctx, state) (factory.steps.Step)")
        reads, writes = getattr(step, "reads", None), getattr(step, "writes", None)
        if reads is None and writes is None:
            written |= set(STATE_FIELDS)
            continue
        for field in (*(reads or ()), *(writes or ())):
            if field not in STATE_FIELDS:
                raise StepError(f"{name}: {field!r} is not a BatchState field; allowed: {', '.join(STATE_FIELDS)}")
        missing = [f for f in reads or () if f not in written]
        if missing:
            raise StepError(f"{name} reads {missing[0]!r}, which no earlier step writes; written before it: "
                            f"{', '.join(sorted(written)) or '(nothing)'}")
        written |= set(writes or ())
