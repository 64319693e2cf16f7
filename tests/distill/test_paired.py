"""Repeated seeds and the paired comparison of `factory runs`: McNemar on known cases (one
seed, descriptive only), a winner named only when the seed-level test clears, seeds as
distinct runs with their mean and interval, and the run ids of single-seed specs unchanged."""
import math
from types import SimpleNamespace

import pytest
from rich.console import Console

from factory.distill.compare import latest_per_mixture, mcnemar_exact, paired, runs_table, seed_interval, verdict
from factory.distill.run import run_id_of
from factory.distill.spec import DistillSpec


def _exact(b, c):  # the same p from first principles: 2 * P(X <= min(b, c)), X ~ Bin(b + c, 1/2)
    n = b + c
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2 ** n)


@pytest.mark.parametrize("b, c, p", [(0, 0, 1.0), (10, 0, 2 / 1024), (5, 5, 1.0), (8, 2, 112 / 1024),
                                     (0, 6, 2 / 64), (20, 8, None)])
def test_mcnemar_exact_on_known_cases(b, c, p):
    assert mcnemar_exact(b, c) == pytest.approx(p if p is not None else _exact(b, c), rel=1e-9)
    assert mcnemar_exact(b, c) == pytest.approx(_exact(b, c), rel=1e-9)


def run(mixture, correct: list[int], seed=None, distill="d", group="g"):
    value = sum(correct) / len(correct)
    metrics = {"n": len(correct), "mean_output_tokens": 40.0}
    if seed is not None:
        metrics.update(seed=seed, seeds=[1, 2, 3], seed_group=f"{group}-{mixture}")
    return {"distill": distill, "mixture": mixture, "metric": "accuracy", "value": value, "ci_low": max(0, value - 0.1),
            "ci_high": min(1, value + 0.1), "metrics": metrics, "rows": 10, "student": {"kind": "tiny"},
            "training": {"steps": 5, "first_loss": 10.0, "final_loss": 3.0},
            "items": {f"i{k:02d}": float(v) for k, v in enumerate(correct)}}


def test_paired_counts_the_discordant_items():
    a = run("long", [1] * 12 + [0] * 8)   # right on items 0-11
    b = run("short", [0] * 10 + [1] * 10)  # right on items 10-19
    t = paired([a], [b])
    assert (t["n"], t["b"], t["c"]) == (20, 10, 8)  # 0-9 only long, 12-19 only short; 10, 11 both
    assert t["p"] == pytest.approx(_exact(10, 8))


def test_paired_refuses_averaging_items_over_seeds():
    # the old sign test on per-item seed means treated the trained models as fixed (issue 22)
    with pytest.raises(ValueError, match="descriptive for one run a side"):
        paired([run("long", [1, 0], seed=1), run("long", [1, 1], seed=2)], [run("short", [0, 0], seed=1)])


def test_one_seed_is_never_a_winner_and_mcnemar_is_descriptive():
    # Was: McNemar p = 6e-5 on one seed named long the winner. One trained model per mixture
    # says nothing of another training seed: not enough seeds to call; McNemar is shown.
    clear = verdict([run("long", [1] * 20 + [0] * 10), run("short", [1] * 5 + [0] * 25)])
    assert clear.startswith("not enough seeds to call (1 paired seed; the seed-level test needs 3): long leads "
                            "(accuracy 0.667")
    assert "vs short: one run +0.500" in clear and "McNemar exact on the one seed, descriptive only" in clear
    assert "vs short p=0.000 (15 items better, 0 worse)" in clear and "best:" not in clear
    # A 4-item lead made of 6 vs 2 discordant items: p = 0.289, shown the same way.
    close = verdict([run("long", [1] * 6 + [0] * 24), run("short", [0] * 6 + [1] * 2 + [0] * 22)])
    assert close.startswith("not enough seeds to call") and "p=0.289" in close
    two = verdict([run("long", [1] * 20 + [0] * 10, seed=s) for s in (1, 2)]
                  + [run("short", [1] * 5 + [0] * 25, seed=s) for s in (1, 2)])
    assert two.startswith("not enough seeds to call (2 paired seeds") and "seed 1 +0.500, seed 2 +0.500" in two
    assert "McNemar" not in two


def test_seeds_are_compared_seed_by_seed_and_shown_with_their_mean_and_interval():
    runs = [run("long", [1] * 20 + [0] * 10, seed=s) for s in (1, 2, 3)]
    runs[1]["value"] = 0.6
    runs += [run("short", [1] * 5 + [0] * 25, seed=s) for s in (1, 2, 3)]
    runs.insert(0, {**run("long", [0] * 30, seed=1, group="old")})  # an older group: history
    latest = latest_per_mixture(runs)["d"]
    assert [(r["mixture"], r["metrics"]["seed"]) for r in latest] == [
        ("long", 1), ("long", 2), ("long", 3), ("short", 1), ("short", 2), ("short", 3)]
    mean, low, high = seed_interval([2 / 3, 0.6, 2 / 3])
    assert mean == pytest.approx((4 / 3 + 0.6) / 3) and low < mean < high
    assert high - mean == pytest.approx(4.302653 * 0.0384900 / math.sqrt(3), rel=1e-4)  # t(0.975, 2) * sd / sqrt 3
    line = verdict(latest)
    # each seed's items: long right on 20, short on 5 of the same 30: +0.5 in every seed
    assert line.startswith(f"best: long leads (accuracy mean of 3 seeds {mean:.3f}, 95% CI across seeds "
                           f"[{low:.3f}, {high:.3f}], n=30 items); the seed-level test (3 seeds, Holm over 1 "
                           f"comparisons) clears every other")
    assert "vs short: +0.500 (seed 1 +0.500, seed 2 +0.500, seed 3 +0.500)" in line
    console = Console(record=True, width=100)
    console.print(runs_table("d", latest))
    text = console.export_text()
    assert "seed" in text and "mean" in text and f"{low:.2f}-{high:.2f}" in text
    assert seed_interval([0.5]) == (0.5, None, None)


SPEC = {"name": "d", "source": {"job": "j"}, "training": {"max_steps": 5, "seed": 3}, "student": {"init_seed": 2}}


def test_old_single_seed_run_ids_and_fingerprints_are_unchanged():
    # Values computed with the code before `seeds`, `method` and `kd` existed (commit af37335).
    spec = DistillSpec.model_validate(SPEC)
    assert run_id_of(spec, SimpleNamespace(eval_set="e1"), "m1") == "2b350f2f45460a55"
    stories = DistillSpec.model_validate({"name": "d", "task": "stories", "source": {"job": "j"},
                                          "training": {"lora": {"r": 4}}})
    assert run_id_of(stories, SimpleNamespace(eval_set="e2"), "m2") == "15a9a4f2f672a00f"
    assert stories.fingerprint == "a898fb6b5dec8aba"


def test_each_seed_is_its_own_run_with_its_seed():
    spec = DistillSpec.model_validate({**SPEC, "seeds": [1, 2, 3]})
    plan = SimpleNamespace(eval_set="e1")
    ids = {s: run_id_of(spec.with_seed(s), plan, "m1", s) for s in spec.seeds}
    assert len(set(ids.values())) == 3 and "2b350f2f45460a55" not in ids.values()
    one = spec.with_seed(2)
    assert (one.training.seed, one.student.init_seed) == (2, 2) and one.training.max_steps == 5
    kd = DistillSpec.model_validate({**SPEC, "training": {**SPEC["training"], "method": "kd"}})
    assert run_id_of(kd, plan, "m1") != "2b350f2f45460a55"  # KD is another run
    with pytest.raises(ValueError, match="seeds must be unique"):
        DistillSpec.model_validate({**SPEC, "seeds": [1, 1]})


def test_factory_distill_with_seeds_trains_each_mixture_per_seed(tmp_path, math_db, student_cache, monkeypatch,
                                                                 capsys):
    from support import query
    from factory.cli import main

    from .test_distill_cli import write_spec

    monkeypatch.setenv("FACTORY_CACHE", str(student_cache))
    spec = write_spec(tmp_path, math_db, name="seeded", mixtures=["long", "short"], seeds=[1, 2],
                      training={"max_steps": 2, "batch_size": 4, "max_length": 96, "threads": 1},
                      evaluation={"source": "held_out", "problems": 4, "max_new_tokens": 8})
    assert main(["distill", spec, "--quiet"]) == 0
    out = capsys.readouterr().out
    rows = query(math_db, "SELECT mixture, json_extract(metrics, '$.seed'), json_extract(hyperparameters, '$.seed'), "
                          "run_id FROM runs WHERE distill = 'seeded' ORDER BY mixture, 2")
    assert [(r[0], int(r[1]), int(r[2])) for r in rows] == [("long", 1, 1), ("long", 2, 2), ("short", 1, 1),
                                                              ("short", 2, 2)]
    assert len({r[3] for r in rows}) == 4
    assert "mean" in out and ("not enough seeds to call (2 paired seeds" in out or "no mixture is ahead" in out)
