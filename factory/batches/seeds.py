"""The first step of every batch: seed rows, and drop rows for seeds that could not be made."""
from __future__ import annotations

from factory.keys import seed_id
from factory.recipes.base import Recipe, SeedDrop
from factory.stages import Context, add_drop
from roles import Drop
from stores import BatchRows


def make_seeds(ctx: Context, recipe: Recipe, batch: BatchRows, indices: list[int]) -> dict[int, dict]:
    seeds = {}
    for i in indices:
        seed = recipe.make_seed(i)
        payload = seed if isinstance(seed, dict) else {"error": seed.reason}
        batch.add("seeds", {"seed_id": seed_id(ctx.job, i), "job": ctx.job, "seed_index": i, "payload": payload})
        if isinstance(seed, SeedDrop):
            add_drop(ctx, batch, i, "seed", Drop(seed.reason, seed.raw))
        else:
            seeds[i] = seed
    return seeds
