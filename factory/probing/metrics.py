"""How well a signal tells originals from their corruptions.

- pairwise accuracy: over matched (original, corruption) pairs, the share where the
  original scores higher; a tie counts 0.5. Its 95% interval is Wilson's score interval
  with the tie-credited successes over the pairs (exact for pairs without ties; with ties
  the credit is fractional and the interval a close approximation).
- AUC: originals and corruptions as two classes, the Mann-Whitney probability that a random
  original outscores a random corruption (ties 0.5). Its 95% interval is a percentile
  bootstrap (BOOTSTRAP resamples of each class, a fixed seed): deterministic, and unlike the
  Hanley-McNeil normal approximation it stays inside [0, 1] at small n.
A pair where a signal has no score (every review unparseable) is left out of that signal.
"""
from __future__ import annotations

import math

import numpy as np

Z_95 = 1.959964
BOOTSTRAP = 1000
BOOTSTRAP_SEED = 0


def wilson(successes: float, n: int, z: float = Z_95) -> tuple[float | None, float | None]:
    """Wilson score interval of successes / n; (None, None) for n = 0."""
    if n == 0:
        return None, None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _credit(a: float, b: float) -> float:
    return 1.0 if a > b else 0.5 if a == b else 0.0


def pairwise_accuracy(pairs: list[tuple[float | None, float | None]]) -> dict:
    """pairs: (original score, corruption score). {"value", "ci_low", "ci_high", "n", "ties"}."""
    usable = [(o, c) for o, c in pairs if o is not None and c is not None]
    credit = sum(_credit(o, c) for o, c in usable)
    low, high = wilson(credit, len(usable))
    return {"value": credit / len(usable) if usable else None, "ci_low": low, "ci_high": high, "n": len(usable),
            "ties": sum(o == c for o, c in usable)}


def _matrix(positives: list[float], negatives: list[float]) -> np.ndarray:
    p, n = np.asarray(positives, dtype=float)[:, None], np.asarray(negatives, dtype=float)[None, :]
    return (p > n) + 0.5 * (p == n)


def auc(positives: list[float | None], negatives: list[float | None]) -> dict:
    """positives: originals' scores, negatives: corruptions'. {"value", "ci_low", "ci_high",
    "n_original", "n_corrupted"}."""
    pos = [v for v in positives if v is not None]
    neg = [v for v in negatives if v is not None]
    out = {"value": None, "ci_low": None, "ci_high": None, "n_original": len(pos), "n_corrupted": len(neg)}
    if not pos or not neg:
        return out
    m = _matrix(pos, neg)
    out["value"] = float(m.mean())
    # Resampling a class with replacement = multinomial counts per member; the resampled
    # AUC is the count-weighted mean of the comparison matrix (no n1 x n0 copy per resample).
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    w_pos = rng.multinomial(len(pos), np.full(len(pos), 1 / len(pos)), size=BOOTSTRAP)
    w_neg = rng.multinomial(len(neg), np.full(len(neg), 1 / len(neg)), size=BOOTSTRAP)
    values = ((w_pos @ m) * w_neg).sum(axis=1) / (len(pos) * len(neg))
    out["ci_low"], out["ci_high"] = (float(x) for x in np.percentile(values, [2.5, 97.5]))
    return out
