"""Review: k reviewers score each sample in play; unparseable reviews are drop rows. The
model that wrote a sample is passed along so a pool can keep it out of the sample's reviews.

With decision.review_score: expected, each parsed review also gets its logprob-weighted
scores (G-Eval, `with_expected`): for every integer axis of the rubric, the expectation of
the score under the reviewer model's probabilities over the allowed values, read where the
sampled value was written (one forward pass over prompt + completion, executor
.expected_scores -> the engine's backend). The review row's `overall` is then the mean of
the expected axes (what Decide reads); its `scores` stay the sampled ones. Each review's
expected scores are a `signals` row (`expected_scores.<reviewer index>`, value: the
expected overall, details: per axis the expectation and the distribution), keyed by the
review's request key: a function of the request and its (cached) completion, so another
job making the same request reads them back instead of computing them.

Only computed when asked: the forward pass costs about half a review's generation on
SmolLM2 (docs/scores.md), so a job deciding on sampled scores does not pay it.
"""
from __future__ import annotations

import time
from dataclasses import replace

from factory.backends.base import EXPECTED_SCORE_BACKENDS, expected_value
from factory.calls import library_versions
from factory.keys import digest, request_seed
from factory.steps.context import Call, Context, add_drop, add_signal, signal_row
from factory.steps.state import BatchState
from roles import Drop
from roles.reviewer import integer_axes

ROLE = "expected_scores"  # the signals rows' role (no completion of its own)


class Review:
    role = "reviewer"
    reads, writes = ("samples", "to_review"), ("reviews",)

    def run(self, ctx: Context, state: BatchState) -> None:
        items = state.to_review
        if ctx.spec.reviewers == 0:  # reviewers: 0: Decide accepts on the gates
            return
        authors = {i: state.samples[i].get("model") for i in items if i in state.samples}
        state.reviews = {i: [] for i in items}
        self.ask(ctx, state, [(i, r, v) for i, (_, v) in items.items() for r in range(ctx.spec.reviewers)], authors)
        if ctx.spec.decision.min_reviews is not None:
            self.replace_missing(ctx, state, authors)

    def replace_missing(self, ctx: Context, state: BatchState, authors: dict) -> None:
        """decision.min_reviews: each sample below the quorum gets replacement reviews, the
        next reviewer slots (new request seeds), at most decision.replacement_reviews of them,
        in rounds until the quorum is met or they are spent; and a `quorum` signal row (value
        1.0 when the replacements restored the quorum, else 0.0), which `factory stats` counts."""
        rule, items = ctx.spec.decision, state.to_review
        short = {i: len(state.reviews[i]) for i in items if len(state.reviews[i]) < rule.min_reviews}
        used = dict.fromkeys(short, 0)
        while True:
            asked = []
            for i in short:
                n = min(rule.min_reviews - len(state.reviews[i]), rule.replacement_reviews - used[i])
                asked += [(i, ctx.spec.reviewers + used[i] + k, items[i][1]) for k in range(max(n, 0))]
                used[i] += max(n, 0)
            if not asked:  # every short sample met the quorum or spent its replacements: bounded
                break
            self.ask(ctx, state, asked, authors)
        for i, first in short.items():
            valid = len(state.reviews[i])
            add_signal(ctx, state.batch, items[i][0], "quorum", float(valid >= rule.min_reviews),
                       {"min_reviews": rule.min_reviews, "valid_reviews": first, "replacements": used[i],
                        "valid_after_replacements": valid}, state.samples.get(i))

    def ask(self, ctx: Context, state: BatchState, asked: list[tuple[int, int, dict]], authors: dict) -> None:
        """One round of review calls (seed index, reviewer slot, variables): parsed reviews go
        to state.reviews and review rows, unparseable ones to drop rows."""
        items = state.to_review
        calls = ctx.call(self.role, asked, authors)
        expected_rows: list[dict] = []
        if ctx.spec.decision.review_score == "expected":
            calls, expected_rows = with_expected(ctx, self.role, asked, authors, calls)
        for call in calls:
            sample = items[call.index][0]
            if isinstance(call.parsed, Drop):
                add_drop(ctx, state.batch, call.index, self.role, call.parsed, call.lineage, sample, call.slot)
                continue
            state.reviews[call.index].append(call.parsed)
            state.batch.add("reviews", {"review_id": digest("review", sample, call.slot), "job": ctx.job,
                                        "sample_id": sample, "reviewer_index": call.slot, **call.parsed.as_dict(),
                                        **call.lineage})
        for call, row in expected_rows:
            state.batch.add("signals", {**row, "sample_id": items[call.index][0]})


def can_expect(backend: str, base_dir: str | None = None) -> bool:
    """Whether the backend's engines implement expected_scores, without loading a model."""
    from factory.backends import class_offers

    return backend in EXPECTED_SCORE_BACKENDS or class_offers(backend, "expected_scores", base_dir)



def role_rubric(spec, recipe_cls, name: str = "reviewer"):
    """The Rubric class the job's role `name` scores with, or None when it has none or the
    role cannot be made here (a recipe that needs more to build its roles: the run finds out)."""
    from roles.reviewer import Rubric

    try:
        role_spec = spec.role(name)
        template = spec.template(role_spec.template)
        role = recipe_cls.roles[name].make(template, recipe_cls(spec))
    except Exception:  # noqa: BLE001
        return None
    output = getattr(role, "output", None)
    return output if isinstance(output, type) and issubclass(output, Rubric) else None


def review_rubric_axes(spec, recipe_cls) -> dict[str, list[int]] | None:
    """The integer axes of the job's reviewer rubric, or None when the role cannot be made
    here (the run then finds out: with_expected)."""

    try:
        role_spec = spec.role("reviewer")
        template = spec.template(role_spec.template)
        role = recipe_cls.roles["reviewer"].make(template, recipe_cls(spec))
    except Exception:  # noqa: BLE001 - a recipe that needs more to build its roles is checked at run time
        return None
    output = getattr(role, "output", None)
    return integer_axes(output) if output is not None else {}


def with_expected(ctx: Context, role: str, items: list[tuple[int, int, dict]], exclude: dict | None,
                  calls: list[Call]) -> tuple[list[Call], list[tuple[Call, dict]]]:
    """The calls ctx.call(role, items, exclude) answered, each parsed review with its
    expected scores (ReviewResult.expected; `overall` the expected mean when the job decides
    on them), and a signals row (without sample_id and job) for each."""
    bound = ctx.bound[role]
    fields = integer_axes(bound.role.output)
    if not fields:
        raise RuntimeError(f"decision.review_score: expected: role {role}'s rubric {bound.role.output.__name__} "
                           "has no integer score axes")
    exclude = exclude or {}
    todo = {}  # call position -> its request, rebuilt as Context.call built it
    for n, call in enumerate(calls):
        if isinstance(call.parsed, Drop):
            continue
        index, slot, variables = items[n]
        request = bound.request(variables, request_seed(ctx.spec.seed, index, role, slot), index, slot,
                                exclude.get(index))
        if request.key != call.lineage["request_key"]:  # the same inputs must make the same request
            raise RuntimeError(f"role {role}: the review request of seed {index} could not be rebuilt")
        todo[n] = request
    keys = sorted({r.key for r in todo.values()})
    found = ctx.store.cached_expected(ROLE, keys)
    seconds: dict[str, float] = {}
    missing = {r.key: r for r in todo.values() if r.key not in found}
    if missing:
        texts = ctx.store.cached(list(missing))  # every completion was saved before ctx.call returned
        for route in sorted({r.route for r in missing.values()}):
            batch = [r for r in missing.values() if r.route == route]
            started = time.perf_counter()
            results = ctx.caller.executor.expected_scores(
                bound.models[route][0], [(r.messages, texts[r.key]["text"]) for r in batch], fields)
            each = round((time.perf_counter() - started) / len(batch), 4)  # one call for the batch: its time, shared
            for r, dists in zip(batch, results):
                found[r.key], seconds[r.key] = dists, each
    out, rows = list(calls), []
    decide_on_expected = ctx.spec.decision.review_score == "expected"
    for n, request in todo.items():
        call, dists = calls[n], found[request.key]
        axes = {axis: round(expected_value(dist), 4) for axis, dist in dists.items()}
        if not axes:  # no score value found in the text (a rubric the regex cannot read): sampled stays
            continue
        overall = round(sum(axes.values()) / len(axes), 4)
        review = call.parsed
        expected = {"axes": axes, "overall": overall, "sampled_overall": review.overall}
        review = replace(review, expected=expected, overall=overall if decide_on_expected else review.overall)
        out[n] = replace(call, parsed=review)
        rows.append((out[n], signal_row(
            ctx, None, f"{ROLE}.{call.slot}", overall,
            {"axes": axes, "sampled": review.scores, "probabilities": dists,
             "unit": "expectation of each integer axis under the reviewer's token probabilities"},
            model=bound.models[request.route][1], request_key=request.key, completion_tokens=0,
            seconds=seconds.get(request.key, 0.0), versions=library_versions(), role=ROLE)))
    return out, rows
