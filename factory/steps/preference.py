"""Preference steps: write a prompt, n candidate responses (kept as `solutions` rows of
kind 'candidate'), k reviews of each candidate (reviewer_index = candidate * k + reviewer,
label 'candidate:j'), then the best and the worst candidate make a pair when their mean
scores differ by at least min_margin."""
from __future__ import annotations

from factory.keys import content_hash, digest, sample_id, seed_id
from factory.steps.context import Context, add_drop, add_verdict
from factory.steps.state import BatchState
from roles import Drop


class WritePrompts:
    role = "prompt_writer"

    def run(self, ctx: Context, state: BatchState) -> None:
        prompts = state.extra.setdefault("prompts", {})
        for call in ctx.call(self.role, [(i, 0, s) for i, s in state.seeds.items()]):
            if isinstance(call.parsed, Drop):
                add_drop(ctx, state.batch, call.index, self.role, call.parsed, call.lineage)
            else:
                prompts[call.index] = (call.parsed.instruction.strip(), call.lineage)


class Candidates:
    role = "generator"

    def run(self, ctx: Context, state: BatchState) -> None:
        prompts, n = state.extra.get("prompts", {}), ctx.recipe.options.candidates
        candidates = state.extra.setdefault("candidates", {})
        calls = ctx.call(self.role, [(i, j, {"instruction": p}) for i, (p, _) in prompts.items() for j in range(n)])
        for call in calls:
            sample = sample_id(ctx.job, call.index)
            usable = not isinstance(call.parsed, Drop)
            text = call.parsed.text if usable else call.parsed.raw
            state.batch.add("solutions", {
                "solution_id": digest("solution", sample, "candidate", call.slot), "job": ctx.job,
                "sample_id": sample, "kind": "candidate", "attempt": call.slot, "text": text, "answer": None,
                "status": "ok" if usable else "unparseable", "status_reason": "" if usable else call.parsed.reason,
                "correct": None, **call.lineage})
            if usable:
                candidates.setdefault(call.index, {})[call.slot] = text
            else:
                add_drop(ctx, state.batch, call.index, self.role, call.parsed, None, sample, call.slot)


class ReviewCandidates:
    role = "reviewer"

    def run(self, ctx: Context, state: BatchState) -> None:
        k, prompts = ctx.spec.reviewers, state.extra.get("prompts", {})
        candidates = state.extra.get("candidates", {})
        items = [(i, j * k + r, {**state.seeds[i], "instruction": prompts[i][0], "response": text})
                 for i, by_slot in candidates.items() for j, text in sorted(by_slot.items()) for r in range(k)]
        scores = state.extra.setdefault("scores", {})
        for call in ctx.call(self.role, items):
            sample, candidate = sample_id(ctx.job, call.index), call.slot // k
            if isinstance(call.parsed, Drop):
                add_drop(ctx, state.batch, call.index, self.role, call.parsed, call.lineage, sample, call.slot)
                continue
            scores.setdefault(call.index, {}).setdefault(candidate, []).append(call.parsed.overall)
            state.batch.add("reviews", {"review_id": digest("review", sample, call.slot), "job": ctx.job,
                                        "sample_id": sample, "reviewer_index": call.slot,
                                        **call.parsed.as_dict(), "label": f"candidate:{candidate}", **call.lineage})


class PickPairs:
    """The best and worst scored candidates of each prompt -> the sample (made, not yet added)."""

    def run(self, ctx: Context, state: BatchState) -> None:
        prompts, candidates = state.extra.get("prompts", {}), state.extra.get("candidates", {})
        decisions = state.extra.setdefault("decisions", {})
        for i, (prompt, lineage) in prompts.items():
            means = {j: sum(s) / len(s) for j, s in state.extra.get("scores", {}).get(i, {}).items()}
            payload = None
            if len(means) >= 2:
                chosen = max(means, key=lambda j: (means[j], -j))
                rejected = min(means, key=lambda j: (means[j], j))
                margin = round(means[chosen] - means[rejected], 4)
                payload = {"chosen": candidates[i][chosen], "rejected": candidates[i][rejected],
                            "chosen_index": chosen, "rejected_index": rejected, "chosen_score": means[chosen],
                            "rejected_score": means[rejected], "margin": margin, "candidates": len(candidates[i])}
                if margin >= ctx.recipe.options.min_margin:
                    decisions[i] = ("accept", "margin", f"margin {margin:g} >= {ctx.recipe.options.min_margin:g}")
                else:
                    decisions[i] = ("reject", "margin", f"margin {margin:g} < {ctx.recipe.options.min_margin:g}")
            else:
                decisions[i] = ("drop", "no_pair", f"{len(means)} scored candidate(s); a pair needs 2")
            state.made[i] = {"sample_id": sample_id(ctx.job, i), "job": ctx.job, "seed_id": seed_id(ctx.job, i),
                             "seed_index": i, "text": prompt, "content_hash": content_hash(prompt),
                             "duplicate_of": None, "rule_checks": None, "payload": payload, **lineage}


class JudgePairs:
    """The margin decision for every prompt still in play after exact dedup."""

    def run(self, ctx: Context, state: BatchState) -> None:
        for i, row in state.samples.items():
            decision, stage, reason = state.extra["decisions"][i]
            payload = row["payload"] or {}
            add_verdict(ctx, state.batch, row["sample_id"], decision, stage, reason,
                        payload.get("chosen_score"), payload.get("margin"),
                        len(state.extra.get("scores", {}).get(i, {})))
