"""Decide: the decision rule on every reviewed sample; the Adjudicator on the ones it
leaves open; a verdict row for each. The rule reads each review's `overall`: the sampled
scores' overall, or with decision.review_score: expected the mean of the expected axes
(steps/review.py put it there); the verdict's reason says which. A sample with fewer valid
reviews than decision.min_reviews (after its replacement reviews) is never decided on them:
it is dropped (stage 'quorum') or, with decision.below_quorum: adjudicator, the Adjudicator
decides it and the verdict's reason starts "below quorum"."""
from __future__ import annotations

from dataclasses import replace

from factory.decide import LIKELIHOOD_SCORES, Decision, decide, decision_score
from factory.steps.context import Context, add_drop, add_verdict
from factory.steps.state import BatchState
from roles import Drop


class Decide:
    role = "adjudicator"
    reads, writes = ("samples", "to_review", "reviews"), ()

    def run(self, ctx: Context, state: BatchState) -> None:
        rule, batch = ctx.spec.decision, state.batch
        pending = {}
        if rule.score in LIKELIHOOD_SCORES:
            accept_on_score(ctx, state)
            return
        if ctx.spec.reviewers == 0:  # no model review: what reached here passed every gate of the recipe
            for sample, _ in state.to_review.values():
                add_verdict(ctx, batch, sample, "accept", "gates",
                            "reviewers: 0: accepted on the recipe's gates (math: verified) without review")
            return
        for i, (sample, variables) in state.to_review.items():
            reviews = state.reviews.get(i, [])
            if not reviews:
                add_verdict(ctx, batch, sample, "drop", "no_valid_reviews", "every review was unparseable")
                continue
            if rule.min_reviews is not None and len(reviews) < rule.min_reviews:
                # Review spent every replacement on it (steps/review.py): reviewers + replacement_reviews asked
                overall = [r.overall for r in reviews]
                mean, spread = sum(overall) / len(overall), max(overall) - min(overall)
                why = (f"{len(reviews)} valid review{'s' if len(reviews) != 1 else ''} of "
                       f"{ctx.spec.reviewers + rule.replacement_reviews}, fewer than decision.min_reviews "
                       f"{rule.min_reviews}")
                if rule.below_quorum == "adjudicator":
                    pending[i] = (sample, {**variables, "reviews": [r.as_dict() for r in reviews]},
                                  Decision("adjudicate", mean, spread, f"below quorum: {why}"))
                    continue
                add_verdict(ctx, batch, sample, "drop", "quorum", f"{why}: not decided on them", mean, spread,
                            len(reviews))
                continue
            d = decide([r.overall for r in reviews], rule.accept_mean, rule.max_spread, rule.reject_mean)
            d = replace(d, reason=d.reason + basis(rule, reviews))
            if d.outcome == "adjudicate":
                pending[i] = (sample, {**variables, "reviews": [r.as_dict() for r in reviews]}, d)
            else:
                add_verdict(ctx, batch, sample, d.outcome, "reviewers", d.reason, d.mean, d.spread, len(reviews))
        authors = {i: state.samples[i].get("model") for i in pending if i in state.samples}
        for call in ctx.call(self.role, [(i, 0, v) for i, (_, v, _) in pending.items()], authors):
            sample, _, d = pending[call.index]
            n = len(state.reviews[call.index])
            if isinstance(call.parsed, Drop):
                add_drop(ctx, batch, call.index, self.role, call.parsed, call.lineage, sample)
                add_verdict(ctx, batch, sample, "drop", "adjudicator", f"unparseable verdict: {call.parsed.reason}",
                            d.mean, d.spread, n, call.lineage)
            else:
                reason = call.parsed.reason or f"({d.reason})"
                if d.reason.startswith("below quorum"):  # the reviews alone could not decide it: say so
                    reason = f"{d.reason}; the adjudicator: {call.parsed.reason or 'no reason given'}"
                add_verdict(ctx, batch, sample, call.parsed.decision, "adjudicator", reason, d.mean, d.spread, n,
                            call.lineage)


def basis(rule, reviews: list) -> str:
    """What the mean was taken over, for the verdict's reason: nothing for sampled scores."""
    if rule.review_score != "expected":
        return ""
    with_expected = sum(r.expected is not None for r in reviews)
    if with_expected == len(reviews):
        return " (expected scores)"
    # a review whose text held no score value the forward pass could read keeps its sampled overall
    return f" (expected scores for {with_expected} of {len(reviews)} reviews, sampled for the rest)"


def accept_on_score(ctx: Context, state: BatchState) -> None:
    """decision.score: likelihood | likelihood_rules: what reached here passed every gate
    (min_likelihood included: the spec requires it), so it is accepted; the verdict's reason
    gives its decision score. The reviews (when reviewers > 0) are stored but do not decide:
    on the seed-7 demo the reviewers' mean ranked an original above its corruption in 0.50 of
    45 probe pairs, the likelihood in 0.78 (docs/scores.md)."""
    rule = ctx.spec.decision
    likelihoods = {row["sample_id"]: (row["value"], (row.get("details") or {}).get("n_tokens"))
                   for row in state.batch.rows["signals"] if row.get("signal") == "likelihood"}
    for i, (sample, _) in state.to_review.items():
        reviews = state.reviews.get(i, [])
        overall = [r.overall for r in reviews]
        mean = sum(overall) / len(overall) if overall else None
        spread = max(overall) - min(overall) if overall else None
        checks = state.samples[i].get("rule_checks") if i in state.samples else None
        likelihood, n_tokens = likelihoods.get(sample, (None, None))
        text = state.samples[i].get("text") if i in state.samples else None
        value = decision_score(rule.score, mean, likelihood, ctx.recipe.rule_signals(checks), text, n_tokens)
        if value is None:  # the load check makes min_likelihood need a scoring backend: not expected
            add_verdict(ctx, state.batch, sample, "reject", "likelihood",
                        f"no likelihood measured: decision score ({rule.score}) cannot accept it", mean, spread,
                        len(reviews))
            continue
        add_verdict(ctx, state.batch, sample, "accept", "gates",
                    f"decision score ({rule.score}) {value:.3f}: passed every gate (min_likelihood "
                    f"{rule.min_likelihood:g}); the reviews do not decide", mean, spread, len(reviews))
