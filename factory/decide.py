"""The decision rule (recorded with the job): accept if mean >= a and spread <= s,
reject if mean < r, otherwise adjudicate."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Decision:
    outcome: Literal["accept", "reject", "adjudicate"]
    mean: float
    spread: float
    reason: str


def decide(overall_scores: list[float], accept_mean: float, max_spread: float, reject_mean: float) -> Decision:
    mean = sum(overall_scores) / len(overall_scores)
    spread = max(overall_scores) - min(overall_scores)
    if mean >= accept_mean and spread <= max_spread:
        return Decision("accept", mean, spread, f"mean {mean:.2f} >= {accept_mean} and spread {spread:.2f} <= {max_spread}")
    if mean < reject_mean:
        return Decision("reject", mean, spread, f"mean {mean:.2f} < {reject_mean}")
    why = f"spread {spread:.2f} > {max_spread}" if mean >= accept_mean else f"mean {mean:.2f} between {reject_mean} and {accept_mean}"
    return Decision("adjudicate", mean, spread, why)
