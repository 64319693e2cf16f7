"""Review: k reviewers score each sample in play; unparseable reviews are drop rows. The
model that wrote a sample is passed along so a pool can keep it out of the sample's reviews."""
from __future__ import annotations

from factory.keys import digest
from factory.steps.context import Context, add_drop
from factory.steps.state import BatchState
from roles import Drop


class Review:
    role = "reviewer"

    def run(self, ctx: Context, state: BatchState) -> None:
        items = state.to_review
        authors = {i: state.samples[i].get("model") for i in items if i in state.samples}
        calls = ctx.call(self.role, [(i, r, v) for i, (_, v) in items.items() for r in range(ctx.spec.reviewers)],
                         authors)
        state.reviews = {i: [] for i in items}
        for call in calls:
            sample = items[call.index][0]
            if isinstance(call.parsed, Drop):
                add_drop(ctx, state.batch, call.index, self.role, call.parsed, call.lineage, sample, call.slot)
                continue
            state.reviews[call.index].append(call.parsed)
            state.batch.add("reviews", {"review_id": digest("review", sample, call.slot), "job": ctx.job,
                                        "sample_id": sample, "reviewer_index": call.slot, **call.parsed.as_dict(),
                                        **call.lineage})
