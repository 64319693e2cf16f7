"""The first step of every batch: seed rows, and drop rows for seeds that could not be made."""
from __future__ import annotations

from factory.keys import seed_id
from factory.steps.context import Context, add_drop
from factory.steps.state import BatchState
from roles import Drop


class SeedDrop:
    """A seed that could not be made (a malformed line in a seed file): a drop row."""

    def __init__(self, reason: str, raw: str):
        self.reason, self.raw = reason, raw


class MakeSeeds:
    reads, writes = (), ("seeds",)

    def run(self, ctx: Context, state: BatchState) -> None:
        for i in state.indices:
            seed = ctx.recipe.make_seed(i)
            payload = seed if isinstance(seed, dict) else {"error": seed.reason}
            state.batch.add("seeds", {"seed_id": seed_id(ctx.job, i), "job": ctx.job, "seed_index": i,
                                      "payload": payload})
            if isinstance(seed, dict):
                state.seeds[i] = seed
            else:
                add_drop(ctx, state.batch, i, "seed", Drop(seed.reason, seed.raw))
