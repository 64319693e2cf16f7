"""Comparisons whose unit is the training seed (issue 22 item 2).

Two arms (mixtures or distillations), each trained once per seed and measured on the same
items. A difference between them must hold for another training seed, not only for these
trained models, so the seed is the unit:

1. per seed s (runs paired by their `metrics.seed`), the difference d_s of the two arms'
   statistic on the items both were measured on: a ratio of sums (nats / tokens for the
   held-out loss, log-prob / tokens for the teacher likelihood; an item's 0/1 or score over 1
   for accuracy and mean score);
2. the t-interval across the d_s (df = seeds - 1) and its two-sided p: this is the call,
   "clear" only when it excludes 0 (after Holm when several arms are compared);
3. a two-stage bootstrap (resample seeds, then items within each seed) of mean(d_s), shown
   beside it. It is not the call: with 3 seeds a resample has only 10 distinct seed
   multisets and its percentile interval is about [min d_s, max d_s], which misses the mean
   whenever all 3 seeds fall on one side of it: 2 x (1/2)^3 = 25% of the time.

Why not average each item over the seeds and resample items: that treats the trained models
as fixed, and with two identical arms, 3 seeds and 50 items it called a clear difference in
152-190 of 200 simulations; tests/distill/test_seedtest.py holds this test to at most 10%.
"""
from __future__ import annotations

import math

import numpy as np

ALPHA = 0.05
MIN_SEEDS = 3  # with 2 seeds the t-interval has 1 df (t = 12.7): a call would rest on one spread
RESAMPLES = 4000  # as bootstrap.RESAMPLES: percentile bounds move by ~0.002 between bootstrap seeds
SEED = 0
_CHUNK = 500  # resamples per vectorised block: 500 x 5 seeds x 300 items x 8 bytes = 6 MB per array


def seed_of(run: dict):
    """The run's training seed (None for a run of a spec without `seeds`)."""
    return (run.get("metrics") or {}).get("seed")


def paired_seeds(first: list[dict], second: list[dict]) -> list[tuple[object, dict, dict]]:
    """(seed, first's run, second's run) for each seed both arms trained, in seed order."""
    a = {seed_of(r): r for r in first}
    b = {seed_of(r): r for r in second}
    shared = [s for s in a if s in b]
    return [(s, a[s], b[s]) for s in sorted(shared, key=lambda s: (s is None, s))]


def _num_den(value) -> tuple[float, float]:
    """An item's (numerator, denominator): [nats, tokens] as given, a plain value over 1."""
    if isinstance(value, (list, tuple)):
        return float(value[0]), float(value[1])
    return float(value), 1.0


def item_arrays(pairs: list[tuple[object, dict, dict]], items_key: str) -> tuple[list[str], np.ndarray]:
    """The items every paired run was measured on, and an array (4, seeds, items) of the first
    arm's numerators, its denominators, the second's numerators, its denominators."""
    runs = [r for _, a, b in pairs for r in (a, b)]
    shared = sorted(set.intersection(*(set(r.get(items_key) or {}) for r in runs))) if runs else []
    out = np.zeros((4, len(pairs), len(shared)))
    for s, (_, a, b) in enumerate(pairs):
        for i, item in enumerate(shared):
            out[0, s, i], out[1, s, i] = _num_den(a[items_key][item])
            out[2, s, i], out[3, s, i] = _num_den(b[items_key][item])
    return shared, out


def seed_differences(arrays: np.ndarray) -> np.ndarray:
    """d_s = first's ratio of sums - second's, per seed (the last axis is the items)."""
    a_num, a_den, b_num, b_den = arrays
    return a_num.sum(-1) / a_den.sum(-1) - b_num.sum(-1) / b_den.sum(-1)


def t_interval(diffs: list[float] | np.ndarray) -> tuple[float, float, float, float] | None:
    """(mean, 95% low, 95% high, two-sided p) of the seed differences by Student's t with
    seeds - 1 df; None with fewer than 2. Identical differences have no spread: the interval
    is the point and p is 0 unless the point is 0 (scipy would return nan)."""
    from scipy.stats import t

    d = np.asarray(diffs, dtype=float)
    if len(d) < 2:
        return None
    m, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0.0:
        return m, m, m, (1.0 if m == 0.0 else 0.0)
    se = sd / math.sqrt(len(d))
    half = float(t.ppf(1 - ALPHA / 2, len(d) - 1)) * se
    p = float(2 * t.sf(abs(m) / se, len(d) - 1))
    return m, m - half, m + half, p


def two_stage_distribution(arrays: np.ndarray, seed: int = SEED, resamples: int = RESAMPLES) -> np.ndarray:
    """mean(d_s) over `resamples` two-stage resamples: draw the seeds with replacement, then
    within each drawn seed its items with replacement (both arms on the same drawn items,
    so what both find hard cancels)."""
    rng = np.random.default_rng(seed)
    k, n = arrays.shape[1:]
    out = []
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        seeds = rng.integers(0, k, size=(size, k))[..., None]  # (size, k, 1)
        items = rng.integers(0, n, size=(size, k, n))  # items drawn afresh within every drawn seed
        drawn = arrays[:, seeds, items]  # (4, size, k, n)
        out.append(seed_differences(drawn).mean(axis=-1))
    return np.concatenate(out)


def two_stage_interval(arrays: np.ndarray, seed: int = SEED,
                       resamples: int = RESAMPLES) -> tuple[float, float]:
    """The 2.5 and 97.5 percentiles of two_stage_distribution."""
    low, high = np.percentile(two_stage_distribution(arrays, seed, resamples), [2.5, 97.5])
    return float(low), float(high)


def holm(pvalues: list[float | None]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input's order (None counts as 1): the i-th
    smallest p times (m - i + 1), made non-decreasing, at most 1. Reject where < ALPHA."""
    ps = [1.0 if p is None else float(p) for p in pvalues]
    m = len(ps)
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=ps.__getitem__)):
        running = max(running, min(1.0, (m - rank) * ps[i]))
        adjusted[i] = running
    return adjusted


def compare(first: list[dict], second: list[dict], items_key: str | None = "items") -> dict:
    """first - second by the seed-level test. Runs carry per-item values under items_key; with
    items_key None (runs without items) each seed's difference is of the runs' `value`s and
    there is no item stage. Keys: seeds, per_seed, n (shared items), difference (mean of
    per_seed), low, high, p (the t-interval; None under MIN_SEEDS seeds), boot_low, boot_high,
    enough (at least MIN_SEEDS seeds)."""
    pairs = paired_seeds(first, second)
    out = {"seeds": [s for s, _, _ in pairs], "per_seed": [], "n": 0, "difference": None, "low": None,
           "high": None, "p": None, "boot_low": None, "boot_high": None, "enough": len(pairs) >= MIN_SEEDS}
    if items_key is None:
        diffs = np.array([a["value"] - b["value"] for _, a, b in pairs], dtype=float)
        arrays = None
    else:
        shared, arrays = item_arrays(pairs, items_key)
        out["n"] = len(shared)
        if not shared or (arrays[1].sum(-1) <= 0).any() or (arrays[3].sum(-1) <= 0).any():
            out["enough"] = False
            return out
        diffs = seed_differences(arrays)
    if not len(diffs):
        return out
    out["per_seed"] = [float(d) for d in diffs]
    out["difference"] = float(diffs.mean())
    if not out["enough"]:
        return out
    out["difference"], out["low"], out["high"], out["p"] = t_interval(diffs)
    if arrays is not None:
        out["boot_low"], out["boot_high"] = two_stage_interval(arrays)
    return out
