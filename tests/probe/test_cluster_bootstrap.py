"""The probe's pooled intervals resample originals with their corruptions (issue 22): their
coverage by seeded simulation of clustered pairs, where the old intervals (Wilson over pairs,
AUC's classes resampled apart) fall short, and small known cases."""
import numpy as np
import pytest
from scipy.stats import norm

from factory.probing.metrics import BOOTSTRAP, auc, cluster_interval, pairwise_accuracy, wilson

SIMULATIONS = 300  # a coverage's binomial sd at 95% is 1.3 points
AUC_SIMULATIONS = 200
KINDS = 6  # 6 corruption kinds: up to 6 pairs share one original


def covered(interval, truth) -> bool:
    return interval[0] <= truth <= interval[1]


# 12 originals: the probe's default --samples; 40: a larger probe. The lower bounds are ~3 sds
# under what the seeds give (new 90.7% and 95.7%); the old pooled Wilson gave 75% and 81%.
@pytest.mark.parametrize("originals, at_least", [(12, 0.87), (40, 0.91)])
def test_pairwise_accuracy_interval_covers_about_95_percent_of_clustered_pairs(originals, at_least):
    # Each original has its own chance of outranking its corruptions, logit-normal around 0.8
    # with sd 1.5 on the logit scale: an original hard for the judge is hard against all 6.
    # The truth is E[p] over originals (Monte Carlo, 10^6 draws: its error ~3e-4).
    rng = np.random.default_rng(11)
    logit = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    truth = float(logit(np.log(4) + rng.normal(0, 1.5, 1_000_000)).mean())
    ids = np.repeat(np.arange(originals), KINDS).tolist()
    new = old = 0
    for _ in range(SIMULATIONS):
        p = logit(np.log(4) + rng.normal(0, 1.5, originals))
        wins = rng.random((originals, KINDS)) < p[:, None]
        pairs = [(1.0, 0.0) if w else (0.0, 1.0) for w in wins.ravel()]
        got = pairwise_accuracy(pairs, ids)
        new += covered((got["ci_low"], got["ci_high"]), truth)
        old += covered(wilson(float(wins.sum()), wins.size), truth)
    assert at_least <= new / SIMULATIONS <= 0.99
    assert old / SIMULATIONS < 0.85  # the pooled Wilson interval: the pairs are not independent


@pytest.mark.parametrize("originals", [12, 40])
def test_auc_interval_covers_about_95_percent_when_corruptions_share_their_original(originals):
    # Originals score N(0, 1); the 6 corruptions of one original share a level b ~ N(-1, 1)
    # (the judge catches that original's corruptions, or not, together) plus N(0, 0.5) each.
    # Any original against any corruption: X - Y ~ N(1, 1 + 1 + 0.25), so AUC = Phi(1 / 1.5).
    # 200 simulations here (a coverage's sd at 95%: 1.5 points; each one bootstraps twice).
    # The seeds give 94.5% at 12 and at 40 originals; each class resampled apart: 81% and 86%.
    rng = np.random.default_rng(12)
    truth = float(norm.cdf(1 / 1.5))
    ids = list(range(originals))
    neg_ids = np.repeat(np.arange(originals), KINDS).tolist()
    new = old = 0
    for _ in range(AUC_SIMULATIONS):
        positives = rng.normal(0, 1, originals).tolist()
        negatives = (np.repeat(rng.normal(-1, 1, originals), KINDS) + rng.normal(0, 0.5, originals * KINDS)).tolist()
        got = auc(positives, negatives, ids, neg_ids)
        new += covered((got["ci_low"], got["ci_high"]), truth)
        apart = auc(positives, negatives)  # the old interval: each class resampled on its own
        old += covered((apart["ci_low"], apart["ci_high"]), truth)
    assert 0.91 <= new / AUC_SIMULATIONS <= 0.99
    assert old / AUC_SIMULATIONS < 0.89


def test_cluster_interval_small_cases():
    # two originals: one wins its 3 pairs, the other loses its 1. Resamples draw (A, A), (A, B),
    # (B, A), (B, B) with 1/4, 1/2, 1/4 -> shares 1, 3/4, 0: the percentile interval is [0, 1]
    low, high = cluster_interval([1, 1, 1, 0], ["A", "A", "A", "B"])
    assert (low, high) == (0.0, 1.0)
    # every pair won: every resample gives 1; Wilson over the 2 originals, not over the 4 pairs
    assert cluster_interval([1, 1, 1, 1], ["A", "A", "B", "B"]) == wilson(2, 2)
    got = pairwise_accuracy([(2, 1), (2, 3), (5, 1), (5, 5)], ["A", "A", "B", "B"])
    assert got["value"] == pytest.approx(2.5 / 4) and got["n"] == 4 and got["ties"] == 1
    assert got["ci_low"] <= got["value"] <= got["ci_high"]
    # one pair per original: independent pairs, Wilson as before
    one = pairwise_accuracy([(2, 1), (2, 3), (5, 1)], ["A", "B", "C"])
    assert (one["ci_low"], one["ci_high"]) == wilson(2, 3)


def test_auc_resamples_an_original_with_its_corruptions():
    # A's corruptions all below every original, B's all above: resampling originals with their
    # corruptions draws (A, A): AUC 1, (B, B): 0, one of each: the matrix of the two
    got = auc([5.0, 2.0], [1.0, 1.0, 6.0, 6.0], ["A", "B"], ["A", "A", "B", "B"])
    assert got["value"] == pytest.approx(0.5) and got["n_original"] == 2 and got["n_corrupted"] == 4
    assert got["ci_low"] == 0.0 and got["ci_high"] == 1.0
    assert auc([5.0, None], [1.0, 6.0], ["A", "B"], ["A", "B"])["n_original"] == 1
    assert BOOTSTRAP >= 1000
