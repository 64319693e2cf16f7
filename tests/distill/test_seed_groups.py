"""A distillation's seed group: the runs `factory runs` aggregates across `seeds`. Growing
the `seeds` list adds seeds to the group the earlier seeds are in (row a.4 of
docs/experiments.md: with the list in the group's digest, 4 seeds showed as 1)."""
from types import SimpleNamespace

from factory import api
from factory.distill.compare import latest_per_mixture
from factory.distill.run import run_distill, seed_group_of
from factory.distill.spec import DistillSpec, load_distill
from .test_parallel_runs import Stages, ref_db, spec_file  # noqa: F401 - ref_db is a fixture


def spec(**over) -> DistillSpec:
    return DistillSpec.model_validate({"name": "d", "source": {"job": "j"}, "seeds": [1, 2, 3], **over})


def test_adding_seeds_keeps_the_group_and_a_setting_or_the_items_change_it():
    plan = SimpleNamespace(eval_set="held-out-1000")
    three = seed_group_of(spec(), plan, "mixture")
    assert seed_group_of(spec(seeds=[1, 2, 3, 4]), plan, "mixture") == three
    assert seed_group_of(spec(seeds=[4]), plan, "mixture") == three
    assert seed_group_of(spec(training={"learning_rate": 0.01}), plan, "mixture") != three
    assert seed_group_of(spec(), SimpleNamespace(eval_set="other"), "mixture") != three
    assert seed_group_of(spec(), plan, "another mixture") != three


def test_a_seed_added_later_is_compared_with_the_seeds_already_trained(tmp_path, ref_db, student_cache,
                                                                       monkeypatch):
    monkeypatch.setenv("FACTORY_CACHE", str(student_cache))
    db = tmp_path / "r.duckdb"
    db.write_bytes(ref_db.read_bytes())
    run_distill(load_distill(spec_file(tmp_path, db, seeds=[1])), progress=Stages())
    grown = run_distill(load_distill(spec_file(tmp_path, db, seeds=[1, 2])), progress=Stages())
    assert sorted(r.status for r in grown) == ["already done", "already done", "trained", "trained"]
    (latest,) = latest_per_mixture(api.runs(db)).values()
    seeds = sorted((r["mixture"], r["metrics"]["seed"]) for r in latest)
    assert seeds == [("long", 1), ("long", 2), ("short", 1), ("short", 2)]
