"""The composite quality score of a sample, in [0, 1], from what the store knows about it.

components (each in [0, 1], absent when the sample has no such signal):
  reviewers    mean overall review score, rescaled from the rubric's range
  adjudicator  1 accepted / 0 rejected, only for adjudicated samples
  verifier     1 verified / 0 not, only for math
  rules        mean of the recipe's rule signals (Recipe.rule_signals): 1 - out-of-vocabulary
               share, share of the seed words used (TinyStories), 1 - repeated 5-gram ratio
               (textbooks)
  likelihood   the mean natural-log probability per token of the text under the reference
               model (the `likelihood` signal), mapped linearly from [LIKELIHOOD_FLOOR,
               LIKELIHOOD_CEILING] = [-7, -1] nats/token onto [0, 1] and clipped. Measured
               with SmolLM2-135M: a plain story sentence -2.5 (0.75), the same words shuffled
               -9.7 (0), one sentence repeated 12 times -0.4 (1: likelihood rewards loops, so
               the repetition rule signal sits beside it)
score = weighted mean of the present components x (1 - duplicate_penalty) if the sample
was removed as a duplicate or flagged as contaminated.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

LIKELIHOOD_FLOOR, LIKELIHOOD_CEILING = -7.0, -1.0


@dataclass
class SampleSignals:
    sample_id: str
    review_mean: float | None
    adjudication: str | None      # accept | reject | None
    verified: bool | None
    rule_checks: dict | None
    removed: bool                 # exact, near or semantic duplicate not kept, or contaminated
    likelihood: float | None = None  # mean log-probability per token (signals table), if measured


def rule_component(checks: dict | None, recipe) -> float | None:
    parts = recipe.rule_signals(checks) if checks else []
    return sum(parts) / len(parts) if parts else None


def likelihood_component(mean_logprob: float | None) -> float | None:
    if mean_logprob is None:
        return None
    share = (mean_logprob - LIKELIHOOD_FLOOR) / (LIKELIHOOD_CEILING - LIKELIHOOD_FLOOR)
    return max(0.0, min(1.0, share))


def quality(signals: SampleSignals, weights, recipe) -> tuple[float, dict]:
    """recipe: the job's Recipe class (its score range and rule signals)."""
    low, high = recipe.score_range
    components = {
        "reviewers": None if signals.review_mean is None else (signals.review_mean - low) / (high - low),
        "adjudicator": None if signals.adjudication is None else float(signals.adjudication == "accept"),
        "verifier": None if signals.verified is None else float(signals.verified),
        "rules": rule_component(signals.rule_checks, recipe),
        "likelihood": likelihood_component(signals.likelihood),
    }
    present = {k: v for k, v in components.items() if v is not None and getattr(weights, k) > 0}
    total_weight = sum(getattr(weights, k) for k in present)
    base = sum(getattr(weights, k) * v for k, v in present.items()) / total_weight if total_weight else 0.0
    factor = (1.0 - weights.duplicate_penalty) if signals.removed else 1.0
    score = round(max(0.0, min(1.0, base * factor)), 4)
    shown = {k: None if v is None else round(v, 4) for k, v in components.items()}
    return score, {**shown, "removed": signals.removed, "base": round(base, 4)}


def parse_checks(raw) -> dict | None:
    if raw is None:
        return None
    return raw if isinstance(raw, dict) else json.loads(raw)
