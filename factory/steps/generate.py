"""Generate: the generator role writes one sample per seed; unusable output is a drop row.
The recipe turns the parsed output into the sample's text and payload."""
from __future__ import annotations

from factory.keys import content_hash, sample_id, seed_id
from factory.steps.context import Context, add_drop
from factory.steps.state import BatchState
from roles import Drop


class Generate:
    role = "generator"
    reads, writes = ("seeds",), ("made", "parsed")

    def run(self, ctx: Context, state: BatchState) -> None:
        for call in ctx.call(self.role, [(i, 0, seed) for i, seed in state.seeds.items()]):
            i = call.index
            if isinstance(call.parsed, Drop):
                add_drop(ctx, state.batch, i, self.role, call.parsed, call.lineage)
                continue
            state.parsed[i] = call.parsed
            text, payload = ctx.recipe.sample_of(state.seeds[i], call.parsed)
            state.made[i] = {"sample_id": sample_id(ctx.job, i), "job": ctx.job, "seed_id": seed_id(ctx.job, i),
                             "seed_index": i, "text": text, "content_hash": content_hash(text),
                             "duplicate_of": None, "rule_checks": ctx.recipe.checks_of(state.seeds[i], text, call.parsed),
                             "payload": payload, **call.lineage}
