"""Stages every recipe shares: call a role over many items (through the cache), write a
drop row, review, apply the decision rule, adjudicate, record the verdict."""
from __future__ import annotations

from dataclasses import dataclass

from factory.calls import BoundRole, Caller
from factory.decide import decide
from factory.keys import digest, request_seed, seed_id
from factory.spec import JobSpec
from roles import Drop
from stores import BatchRows

LINEAGE_FIELDS = ("template", "template_sha256", "role_version", "model", "sampling", "request_seed",
                  "request_key", "prompt_tokens", "completion_tokens", "seconds")
NO_LINEAGE = dict.fromkeys(LINEAGE_FIELDS)


@dataclass
class Call:
    """One role call's outcome: the parsed result (or a Drop) and its lineage."""

    index: int
    slot: int
    parsed: object
    lineage: dict


@dataclass
class Context:
    spec: JobSpec
    job: str
    bound: dict[str, BoundRole]
    caller: Caller

    def call(self, role: str, items: list[tuple[int, int, dict]], exclude: dict[int, dict] | None = None) -> list[Call]:
        """items: (seed index, slot, template variables). The slot tells apart several calls
        of one role for one seed (reviewer k, program attempt k) in the request seed.
        exclude: seed index -> the identity of the model that wrote the sample (reviewer pools)."""
        bound = self.bound[role]
        exclude = exclude or {}
        requests = [bound.request(v, request_seed(self.spec.seed, i, role, slot), slot, exclude.get(i))
                    for i, slot, v in items]
        completions = self.caller.run(bound, requests)
        return [Call(i, slot, bound.role.parse(v, c.text), bound.lineage(r, c))
                for (i, slot, v), r, c in zip(items, requests, completions)]


def add_drop(ctx: Context, batch: BatchRows, index: int, role: str, drop: Drop, lineage: dict | None = None,
             sample: str | None = None, slot: int | None = None) -> None:
    batch.add("drops", {"drop_id": digest("drop", ctx.job, index, role, slot), "job": ctx.job,
                        "seed_id": seed_id(ctx.job, index), "sample_id": sample, "role": role,
                        "reviewer_index": slot, "reason": drop.reason, "raw_text": drop.raw,
                        **(lineage or NO_LINEAGE)})


def add_verdict(ctx: Context, batch: BatchRows, sample: str, decision: str, stage: str, reason: str,
                mean=None, spread=None, n_reviews: int = 0, lineage: dict | None = None) -> None:
    batch.add("verdicts", {"sample_id": sample, "job": ctx.job, "decision": decision, "stage": stage,
                           "reason": reason, "mean_score": mean, "spread": spread, "n_reviews": n_reviews,
                           **(lineage or NO_LINEAGE)})


def review(ctx: Context, batch: BatchRows, items: dict[int, tuple[str, dict]],
           authors: dict[int, dict] | None = None) -> dict[int, list]:
    """items: seed index -> (sample id, reviewer variables). k reviews each; returns the
    parsed ReviewResults per index (unparseable ones become drop rows). authors: seed index ->
    identity of the model that wrote the sample, kept out of its reviews when the pool says so."""
    calls = ctx.call("reviewer", [(i, r, v) for i, (_, v) in items.items() for r in range(ctx.spec.reviewers)],
                     authors)
    results: dict[int, list] = {i: [] for i in items}
    for call in calls:
        sample = items[call.index][0]
        if isinstance(call.parsed, Drop):
            add_drop(ctx, batch, call.index, "reviewer", call.parsed, call.lineage, sample, call.slot)
            continue
        results[call.index].append(call.parsed)
        batch.add("reviews", {"review_id": digest("review", sample, call.slot), "job": ctx.job, "sample_id": sample,
                              "reviewer_index": call.slot, **call.parsed.as_dict(), **call.lineage})
    return results


def decide_and_adjudicate(ctx: Context, batch: BatchRows, items: dict[int, tuple[str, dict]],
                          reviews: dict[int, list]) -> None:
    """The decision rule on every reviewed item; the Adjudicator on the ones it leaves open.
    items: seed index -> (sample id, adjudicator variables without the reviews)."""
    rule = ctx.spec.decision
    pending = {}
    for i, (sample, variables) in items.items():
        if not reviews[i]:
            add_verdict(ctx, batch, sample, "drop", "no_valid_reviews", "every review was unparseable")
            continue
        d = decide([r.overall for r in reviews[i]], rule.accept_mean, rule.max_spread, rule.reject_mean)
        if d.outcome == "adjudicate":
            pending[i] = (sample, {**variables, "reviews": [r.as_dict() for r in reviews[i]]}, d)
        else:
            add_verdict(ctx, batch, sample, d.outcome, "reviewers", d.reason, d.mean, d.spread, len(reviews[i]))
    if not pending:
        return
    for call in ctx.call("adjudicator", [(i, 0, v) for i, (_, v, _) in pending.items()]):
        sample, _, d = pending[call.index]
        n = len(reviews[call.index])
        if isinstance(call.parsed, Drop):
            add_drop(ctx, batch, call.index, "adjudicator", call.parsed, call.lineage, sample)
            add_verdict(ctx, batch, sample, "drop", "adjudicator", f"unparseable verdict: {call.parsed.reason}",
                        d.mean, d.spread, n, call.lineage)
        else:
            add_verdict(ctx, batch, sample, call.parsed.decision, "adjudicator", call.parsed.reason or f"({d.reason})",
                        d.mean, d.spread, n, call.lineage)
