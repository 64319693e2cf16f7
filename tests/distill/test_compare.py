"""`factory runs` names the best mixture only as far as the seed-level test allows: one run
per mixture (no items, no seeds) is never a call, whatever its interval over items says."""
from factory.distill.compare import latest_per_mixture, verdict


def run(mixture, value, low, high, distill="d", n=50, tokens=40.0, seed=None):
    return {"distill": distill, "mixture": mixture, "metric": "accuracy", "value": value, "ci_low": low,
            "ci_high": high, "metrics": {"n": n, "mean_output_tokens": tokens, **({"seed": seed} if seed else {})}}


def test_a_lead_inside_the_noise_is_not_a_win():
    line = verdict([run("long", 0.10, 0.04, 0.21), run("short", 0.16, 0.08, 0.29), run("mix-long", 0.12, 0.06, 0.24)])
    assert line.startswith("not enough seeds to call (1 paired seed; the seed-level test needs 3): short leads "
                           "(accuracy 0.160")
    assert "vs long: one run +0.060" in line and "vs mix-long: one run +0.040" in line


def test_a_win_needs_seeds():
    # Was: one run each with intervals over items that do not overlap was "clears every other".
    # One trained model per mixture says nothing of another training seed (issue 22): no call.
    line = verdict([run("long", 0.1, 0.04, 0.2), run("mix-long", 0.6, 0.46, 0.72)])
    assert line.startswith("not enough seeds to call") and "mix-long leads" in line and "clears" not in line
    # 3 seeds each, mix-long ahead by 0.50, 0.45, 0.55 (runs without items: their values per
    # seed): mean 0.5, sd 0.05, t = 17.3 with 2 df, p = 0.003
    seeded = [run("long", v, v - .1, v + .1, seed=s) for s, v in ((1, 0.1), (2, 0.15), (3, 0.05))]
    seeded += [run("mix-long", 0.6, 0.46, 0.72, seed=s) for s in (1, 2, 3)]
    line = verdict(seeded)
    assert line.startswith("best: mix-long leads (accuracy mean of 3 seeds 0.600") and "clears every other" in line
    assert "vs long: +0.500 (seed 1 +0.500, seed 2 +0.450, seed 3 +0.550)" in line and "Holm p=0.003" in line


def test_all_equal_is_a_tie():
    assert verdict([run("long", 0.0, 0.0, 0.07), run("short", 0.0, 0.0, 0.07)]).startswith("no mixture is ahead")


def test_the_newest_run_per_mixture_counts():
    old, new = run("long", 0.1, 0, 0.2), run("long", 0.3, 0.2, 0.4)
    assert latest_per_mixture([old, run("short", 0.2, 0.1, 0.3), new]) == {"d": [new, run("short", 0.2, 0.1, 0.3)]}


def math_run(distill, seed, correct, mixture="short", evaluation=None):
    """A finished math run of one seed graded 1/0 on items i0..; `correct`: the items it got right."""
    items = {f"i{k}": float(k in correct) for k in range(20)}
    return {"distill": distill, "mixture": mixture, "task": "math", "metric": "accuracy", "value": sum(items.values()) / 20,
            "items": items, "metrics": {"seed": seed, "evaluation": evaluation or {"source": "builtin", "seed": 1000}}}


def test_math_distillations_on_the_same_items_are_compared_seed_by_seed():
    from factory.distill.compare import accuracy_comparisons

    # verified-only ahead by 5, 4 and 6 items of 20 in seeds 1-3: +0.25, +0.20, +0.30, mean 0.25,
    # sd 0.05, t(0.975, 2) = 4.303: [0.25 - 0.124, 0.25 + 0.124], clear of 0
    latest = {"verified": [math_run("verified", s, range(k)) for s, k in ((1, 10), (2, 9), (3, 11))],
              "answered": [math_run("answered", s, range(5)) for s in (1, 2, 3)],
              "other-eval": [math_run("other-eval", 1, range(20), evaluation={"source": "builtin", "seed": 7})],
              "two-mixtures": [math_run("two-mixtures", 1, range(3)), math_run("two-mixtures", 1, range(3), "long")]}
    (line,) = accuracy_comparisons(latest)
    assert line.startswith("accuracy across distillations graded on the same items: best: verified (short) 0.500")
    assert "vs answered (0.250): +0.250 (seed 1 +0.250, seed 2 +0.200, seed 3 +0.300), 95% t-interval across " \
           "seeds [0.126, 0.374]" in line
    assert "other-eval" not in line and "two-mixtures" not in line
    # one seed each: not a call
    (line,) = accuracy_comparisons({d: rs[:1] for d, rs in latest.items() if d in ("verified", "answered")})
    assert line.startswith("accuracy across distillations graded on the same items: not enough seeds to call")
