"""Bootstrap intervals over evaluation items (scipy.stats.bootstrap, percentile method,
seeded): the statistic is a ratio of sums, nats over tokens, so a held-out loss in nats per
token weighs each story by its tokens (as training's loss does) and the item, not the token,
is the unit resampled (the tokens of one story are not independent).

ratio_interval: one run's value and its 95% interval. paired_ratio_difference: two runs (or
two groups of seeds) on the same items, the difference of their ratios resampled item by
item together, so what both find hard cancels out."""
from __future__ import annotations

import numpy as np

# 4,000 resamples: on 50 synthetic items (ratio ~1.18) the bounds moved by 0.001-0.003 between
# bootstrap seeds 0 and 1; a call takes ~10 ms.
RESAMPLES = 4000
SEED = 0


def _bootstrap(data: tuple, statistic, seed: int, resamples: int):
    from scipy.stats import bootstrap

    return bootstrap(data, statistic, paired=True, vectorized=True, n_resamples=resamples, method="percentile",
                     confidence_level=0.95, rng=np.random.default_rng(seed))


def ratio_interval(nums: list[float], dens: list[float], seed: int = SEED,
                   resamples: int = RESAMPLES) -> tuple[float | None, float | None, float | None]:
    """(sum(nums) / sum(dens), 95% low, 95% high), items resampled. Fewer than 2 items: no
    interval (None, None); no items or no tokens: (None, None, None)."""
    n, d = np.asarray(nums, dtype=float), np.asarray(dens, dtype=float)
    if len(n) != len(d):
        raise ValueError(f"ratio_interval: {len(n)} numerators for {len(d)} denominators")
    if not len(n) or d.sum() <= 0:
        return None, None, None
    value = float(n.sum() / d.sum())
    if len(n) < 2:
        return value, None, None
    res = _bootstrap((n, d), lambda a, b, axis=-1: a.sum(axis) / b.sum(axis), seed, resamples)
    return value, float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_ratio_difference(first: tuple[list[float], list[float]], second: tuple[list[float], list[float]],
                            seed: int = SEED, resamples: int = RESAMPLES) -> dict:
    """first and second: (nums, dens), item i of one paired with item i of the other.
    difference = ratio(first) - ratio(second) with its 95% percentile interval and a
    two-sided bootstrap p (twice the smaller share of resampled differences on either side
    of 0, at most 1). Items: 2 with per-item differences -1 and 3 (one token each) resample
    to -1, 1, 3 with probabilities 1/4, 1/2, 1/4: interval [-1, 3], p = 2 * 1/4 = 0.5."""
    a_n, a_d = (np.asarray(x, dtype=float) for x in first)
    b_n, b_d = (np.asarray(x, dtype=float) for x in second)
    if not len(a_n) == len(a_d) == len(b_n) == len(b_d):
        raise ValueError("paired_ratio_difference: both sides need the same items")
    n = len(a_n)
    if not n or a_d.sum() <= 0 or b_d.sum() <= 0:
        return {"n": n, "difference": None, "low": None, "high": None, "p": None}
    difference = float(a_n.sum() / a_d.sum() - b_n.sum() / b_d.sum())
    if n < 2:
        return {"n": n, "difference": difference, "low": None, "high": None, "p": None}

    def statistic(an, ad, bn, bd, axis=-1):
        return an.sum(axis) / ad.sum(axis) - bn.sum(axis) / bd.sum(axis)

    res = _bootstrap((a_n, a_d, b_n, b_d), statistic, seed, resamples)
    dist = res.bootstrap_distribution
    p = min(1.0, 2 * min(float(np.mean(dist <= 0)), float(np.mean(dist >= 0))))
    return {"n": n, "difference": difference, "low": float(res.confidence_interval.low),
            "high": float(res.confidence_interval.high), "p": p}
