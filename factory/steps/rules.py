"""Rule checks: a recipe's model-free rules reject a sample before any review is paid for;
the rest go on to review with the recipe's reviewer variables. A recipe may also turn its
checks into `signals` rows (Recipe.rule_signal_rows: TinyStories' seed_words share), which
`factory stats` summarizes (mean, range, verdicts decided) and `factory explain` shows."""
from __future__ import annotations

from factory.steps.context import Context, add_signal, add_verdict
from factory.steps.state import BatchState


class ApplyRules:
    reads, writes = ("seeds", "samples"), ("to_review",)

    def run(self, ctx: Context, state: BatchState) -> None:
        for i, row in state.samples.items():
            for name, (value, details) in ctx.recipe.rule_signal_rows(row["rule_checks"]).items():
                add_signal(ctx, state.batch, row["sample_id"], name, value, details, role="rules")
            rejected = ctx.recipe.rule_reject(row["rule_checks"])
            if rejected:
                add_verdict(ctx, state.batch, row["sample_id"], "reject", *rejected)
            else:
                state.to_review[i] = (row["sample_id"], ctx.recipe.review_variables(state.seeds.get(i, {}), row))
