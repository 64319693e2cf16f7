"""Exact dedup by content hash against the job's earlier samples and this batch. Every made
sample is added (a duplicate with duplicate_of set and a reject verdict); the first of each
text stays in play."""
from __future__ import annotations

from factory.steps.context import Context, add_verdict
from factory.steps.state import BatchState


class ExactDedup:
    reads, writes = ("made",), ("made", "samples")

    def run(self, ctx: Context, state: BatchState) -> None:
        seen = ctx.store.samples_by_hash(ctx.job, [r["content_hash"] for r in state.made.values()])
        for i in sorted(state.made):
            row = state.made[i]
            first = seen.get(row["content_hash"])
            if first is not None:
                state.batch.add("samples", {**row, "duplicate_of": first})
                add_verdict(ctx, state.batch, row["sample_id"], "reject", "exact_duplicate",
                            f"same {ctx.recipe.sample_noun} as {first}")
                continue
            seen[row["content_hash"]] = row["sample_id"]
            state.batch.add("samples", row)
            state.samples[i] = row
        state.made = {}
