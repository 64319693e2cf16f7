"""The seed-level test of `factory runs` (issue 22 item 2): its false-"clear" rate on two
identical arms and its power on a real gap (seeded simulations), the two-stage bootstrap
and the t-interval on hand-computed cases, and Holm on known cases."""
import math

import numpy as np
import pytest

from factory.distill import seedtest
from factory.distill.compare import seed_calls, verdict

SIMULATIONS = 200
SEEDS, ITEMS = 3, 50


def arm(name, nats: np.ndarray, tokens: np.ndarray, seeds=range(1, SEEDS + 1), value=None) -> list[dict]:
    """One run per seed with per-item (nats, tokens) under heldout_items (nats: seeds x items)."""
    return [{"mixture": name, "value": value, "metrics": {"seed": s},
             "heldout_items": {f"i{i:03d}": [float(nats[k, i]), float(tokens[i])] for i in range(nats.shape[1])}}
            for k, s in enumerate(seeds)]


def simulate(rng, gap: float, seed_spread: float) -> dict:
    """Two arms on ITEMS stories: a per-story difficulty both arms share (sd 0.5 nats/token),
    a per-(arm, seed) shift (seed_spread: how much one training seed moves the whole held-out
    loss; row a.1's sft seeds spread 0.33), and per-(arm, seed, story) noise (sd 0.2). The
    second arm is `gap` nats/token worse. Returns seed_calls' first-vs-second comparison."""
    tokens = rng.integers(80, 320, size=ITEMS)  # stories of 80-320 tokens, as row a.1's
    difficulty = rng.normal(0, 0.5, size=ITEMS)

    def loss(shift):
        per_token = 5.0 + shift + difficulty + rng.normal(0, seed_spread, size=(SEEDS, 1)) \
            + rng.normal(0, 0.2, size=(SEEDS, ITEMS))
        return per_token * tokens

    groups = {"a": arm("a", loss(0.0), tokens), "b": arm("b", loss(gap), tokens)}
    return seed_calls(groups, "a", "heldout_items", higher_is_better=False)["b"]


@pytest.mark.parametrize("seed_spread", [0.3, 0.05])
def test_identical_arms_are_called_clear_at_most_one_time_in_ten(seed_spread):
    # The item-level test called 190/200 (spread 0.3) and 152/200 (0.05) of these clear (issue
    # 22). The t-interval across 3 seeds is exact for normal seed differences: ~5% expected,
    # 10/200 with a binomial sd of 3; the bound 10% leaves 3 sds above the nominal rate.
    rng = np.random.default_rng(22)
    results = [simulate(rng, 0.0, seed_spread) for _ in range(SIMULATIONS)]
    called = sum(t["clear"] or (t["enough"] and t["high"] < 0) for t in results)  # either direction
    assert all(t["enough"] and len(t["seeds"]) == SEEDS and t["n"] == ITEMS for t in results)
    assert called <= 0.10 * SIMULATIONS
    # Why the two-stage bootstrap is shown, not called on: over 3 seeds its percentile interval
    # is about [min, max] of the seed differences, which excludes 0 whenever all 3 fall on one
    # side of it (2 x 1/8 = 25% when seeds dominate). As the call it would break the same bound
    # (these seeds: 51/200 at spread 0.3, 24/200 at 0.05, against 6 and 1 for the t-interval).
    by_bootstrap = sum(t["boot_low"] > 0 or t["boot_high"] < 0 for t in results)
    assert by_bootstrap > 0.10 * SIMULATIONS


def test_a_real_gap_is_called_clear_at_least_four_times_in_five():
    # A gap of 0.5 nats/token against seed shifts of sd 0.1 per arm: the seed differences have
    # sd ~ sqrt(2 x 0.1^2 + small item noise) ~ 0.14, so mean / se ~ 0.5 / (0.14 / sqrt 3) ~ 6
    # against t(0.975, 2) = 4.30: power ~ 85% with 3 seeds (these seeds: 169/200).
    rng = np.random.default_rng(23)
    results = [simulate(rng, 0.5, 0.1) for _ in range(SIMULATIONS)]
    assert sum(t["clear"] for t in results) >= 0.80 * SIMULATIONS
    assert all(t["difference"] < 0 for t in results if t["clear"])  # a is the lower loss


def test_t_interval_across_seeds_hand_computed():
    # seed differences 1, 2, 3: mean 2, sd 1, se 1 / sqrt 3; t(0.975, 2) = 0.95 x sqrt(2 / 0.0975)
    # = 4.302653; with 2 df the t tail is closed form: p = 1 - x / sqrt(x^2 + 2), x = 2 sqrt 3
    mean, low, high, p = seedtest.t_interval([1.0, 2.0, 3.0])
    half = 0.95 * math.sqrt(2 / 0.0975) / math.sqrt(3)
    assert (mean, low, high) == (pytest.approx(2.0), pytest.approx(2 - half), pytest.approx(2 + half))
    x = 2 * math.sqrt(3)
    assert p == pytest.approx(1 - x / math.sqrt(x * x + 2), rel=1e-9)
    assert seedtest.t_interval([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5, 0.0)  # no spread: the point
    assert seedtest.t_interval([0.5]) is None


def _arrays(first_items: list[list[float]], second_items: list[list[float]]) -> np.ndarray:
    a, b = np.array(first_items, dtype=float), np.array(second_items, dtype=float)
    return np.stack([a, np.ones_like(a), b, np.ones_like(b)])


def _shares(values: np.ndarray, support: dict[float, float]) -> None:
    """Each value's share of the resamples within 0.03 of its hand-computed probability
    (4,000 resamples: a share's sd is at most 0.008)."""
    assert set(np.round(values, 9)) <= set(support)
    for v, prob in support.items():
        assert np.mean(np.isclose(values, v)) == pytest.approx(prob, abs=0.03), v


def test_two_stage_bootstrap_hand_computed():
    # Per-item differences seed 1: [0, 2], seed 2: [4, 4] (the second arm all 0).
    # Stage 1 draws (s1, s1), (s1, s2), (s2, s1), (s2, s2), 1/4 each; stage 2 makes s1's mean
    # 0, 1, 2 with 1/4, 1/2, 1/4 (s2's is always 4). The mean of the two drawn seeds:
    #   (s1, s1): (m + m') / 2 = 0, .5, 1, 1.5, 2 with 1, 4, 6, 4, 1 / 16, times 1/4
    #   one of each (1/2): (m + 4) / 2 = 2, 2.5, 3 with 1/4, 1/2, 1/4
    #   (s2, s2) (1/4): 4
    # -> 0: 1/64, .5: 4/64, 1: 6/64, 1.5: 4/64, 2: 9/64, 2.5: 16/64, 3: 8/64, 4: 16/64
    arrays = _arrays([[0, 2], [4, 4]], [[0, 0], [0, 0]])
    values = seedtest.two_stage_distribution(arrays)
    _shares(values, {0: 1 / 64, .5: 4 / 64, 1: 6 / 64, 1.5: 4 / 64, 2: 9 / 64, 2.5: 16 / 64, 3: 8 / 64, 4: 16 / 64})
    assert values.mean() == pytest.approx(2.5, abs=0.05)  # the mean of the seed means 1 and 4
    # 2.5th percentile: P(<= 0) = 1.6% < 2.5% < P(<= .5) = 7.8%; 97.5th: P(4) = 25%
    assert seedtest.two_stage_interval(arrays) == (0.5, 4.0)
    # Items resampled within each seed, not only seeds: two seeds with the same differences
    # [-1, 3] (seed resampling changes nothing) still spread: -1, 0, 1, 2, 3 with 1, 4, 6, 4, 1 / 16.
    values = seedtest.two_stage_distribution(_arrays([[-1, 3], [-1, 3]], [[0, 0], [0, 0]]))
    _shares(values, {-1: 1 / 16, 0: 4 / 16, 1: 6 / 16, 2: 4 / 16, 3: 1 / 16})
    # and the same draws for both arms: an item hard for both cancels ([5, 9] vs [4, 8]: always 1)
    assert set(seedtest.two_stage_distribution(_arrays([[5, 9], [5, 9]], [[4, 8], [4, 8]]))) == {1.0}


def test_holm_on_known_cases():
    # sorted 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> raised to 0.06
    assert seedtest.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert seedtest.holm([0.04, 0.001, 0.5]) == pytest.approx([0.08, 0.003, 0.5])
    assert seedtest.holm([0.3, None]) == pytest.approx([0.6, 1.0]) and seedtest.holm([0.02]) == [0.02]


def scored(name, per_seed: list[float], items=10):
    """3 seeds; every item of seed s scores per_seed[s] (differences are then exact)."""
    return [{"distill": "d", "mixture": name, "metric": "mean_score", "value": v,
             "metrics": {"seed": s, "n": items, "mean_output_tokens": 40.0},
             "items": {f"i{i}": v for i in range(items)}} for s, v in zip((1, 2, 3), per_seed)]


def test_a_winner_over_several_mixtures_is_holm_corrected():
    # a - b per seed 0.10, 0.13, 0.07: mean 0.1, sd 0.03, t = 5.77, p = 1 - t / sqrt(t^2 + 2)
    # = 0.0286. Alone, a clears b. With c as far below b as b is below a (every pair's p is
    # 0.0286), Holm over the 3 pairs gives 3 x 0.0286 = 0.086: no winner.
    a, b = scored("a", [0.5, 0.63, 0.47]), scored("b", [0.4, 0.5, 0.4])
    two = verdict(a + b)
    assert two.startswith("best: a leads (mean_score mean of 3 seeds") and "Holm over 1 comparisons" in two
    assert "vs b: +0.100 (seed 1 +0.100, seed 2 +0.130, seed 3 +0.070)" in two and "Holm p=0.029" in two
    c = scored("c", [0.3, 0.37, 0.33])
    three = verdict(a + b + c)
    assert three.startswith("no winner: a leads") and "Holm over 3 comparisons" in three
    assert "does not clear b, c" in three and "vs b: +0.100" in three and "Holm p=0.086" in three
