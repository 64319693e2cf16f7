"""`factory runs` names the best mixture only as far as the intervals allow."""
from factory.distill.compare import latest_per_mixture, verdict


def run(mixture, value, low, high, distill="d", n=50, tokens=40.0):
    return {"distill": distill, "mixture": mixture, "metric": "accuracy", "value": value, "ci_low": low,
            "ci_high": high, "metrics": {"n": n, "mean_output_tokens": tokens}}


def test_a_lead_inside_the_noise_is_not_a_win():
    line = verdict([run("long", 0.10, 0.04, 0.21), run("short", 0.16, 0.08, 0.29), run("mix-long", 0.12, 0.06, 0.24)])
    assert line.startswith("best: short (accuracy 0.160") and "not a clear win" in line and "long, mix-long" in line


def test_a_clear_win_says_so():
    line = verdict([run("long", 0.1, 0.04, 0.2), run("mix-long", 0.6, 0.46, 0.72)])
    assert line.startswith("best: mix-long") and "clears every other" in line


def test_all_equal_is_a_tie():
    assert verdict([run("long", 0.0, 0.0, 0.07), run("short", 0.0, 0.0, 0.07)]).startswith("no mixture is ahead")


def test_the_newest_run_per_mixture_counts():
    old, new = run("long", 0.1, 0, 0.2), run("long", 0.3, 0.2, 0.4)
    assert latest_per_mixture([old, run("short", 0.2, 0.1, 0.3), new]) == {"d": [new, run("short", 0.2, 0.1, 0.3)]}
