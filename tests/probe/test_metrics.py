"""Pairwise accuracy, AUC and their intervals on score lists computed by hand."""
import pytest

from factory.probing.metrics import auc, pairwise_accuracy, wilson


def test_pairwise_accuracy_counts_ties_half():
    # (original, corruption): win, win, tie, loss -> (1 + 1 + 0.5 + 0) / 4
    pairs = [(5, 3), (4, 1), (2, 2), (1, 3)]
    got = pairwise_accuracy(pairs)
    assert got["value"] == pytest.approx(0.625) and got["n"] == 4 and got["ties"] == 1


def test_pairs_without_a_score_are_left_out():
    got = pairwise_accuracy([(5, 3), (None, 1), (2, None)])
    assert got["value"] == 1.0 and got["n"] == 1
    assert pairwise_accuracy([])["value"] is None


def test_wilson_interval():
    # 8 of 10, z = 1.96: Wilson gives [0.4902, 0.9433] (Newcombe 1998, table I method 3)
    low, high = wilson(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    low, high = wilson(10, 10)
    assert high == pytest.approx(1.0) and low == pytest.approx(0.7225, abs=1e-4)
    assert wilson(0, 0) == (None, None)


def test_auc_is_mann_whitney_with_ties_half():
    # originals 3, 5, 7 vs corruptions 1, 3, 6: of the 9 cross pairs, 3>1, 3=3 (0.5),
    # 5>1, 5>3, 7>1, 7>3, 7>6 -> 6.5 / 9
    got = auc([3, 5, 7], [1, 3, 6])
    assert got["value"] == pytest.approx(6.5 / 9)
    assert got["ci_low"] <= got["value"] <= got["ci_high"]
    assert auc([3, 5, 7], [1, 3, 6]) == got  # the bootstrap has a fixed seed


def test_auc_extremes():
    perfect = auc([4, 5], [1, 2, 3])
    assert perfect["value"] == 1.0 and perfect["ci_low"] == 1.0
    assert auc([1, 1], [1, 1])["value"] == 0.5
    assert auc([1, 2], [3, 4])["value"] == 0.0
    assert auc([None], [1])["value"] is None
