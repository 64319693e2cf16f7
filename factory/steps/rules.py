"""Rule checks: a recipe's model-free rules reject a sample before any review is paid for;
the rest go on to review with the recipe's reviewer variables."""
from __future__ import annotations

from factory.steps.context import Context, add_verdict
from factory.steps.state import BatchState


class ApplyRules:
    def run(self, ctx: Context, state: BatchState) -> None:
        for i, row in state.samples.items():
            rejected = ctx.recipe.rule_reject(row["rule_checks"])
            if rejected:
                add_verdict(ctx, state.batch, row["sample_id"], "reject", *rejected)
            else:
                state.to_review[i] = (row["sample_id"], ctx.recipe.review_variables(state.seeds.get(i, {}), row))
