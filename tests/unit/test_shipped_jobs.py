"""Every file in jobs/ is a valid job or distillation spec, so that a command the docs give
(docs/experiments.md, README) does not fail on a field that was renamed since."""
import pytest
import yaml

from support import REPO
from factory.distill.spec import load_distill
from factory.spec import load_job

SHIPPED = sorted((REPO / "jobs").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_a_shipped_file_loads(path):
    data = yaml.safe_load(path.read_text())
    if "recipe" in data:
        assert load_job(path).name == data["name"]
    else:  # a distillation: its source job is a shipped job's name
        spec = load_distill(path)
        names = {yaml.safe_load(p.read_text()).get("name") for p in SHIPPED}
        assert spec.source.job in names


def test_the_stories_experiment_arms_differ_in_one_thing_each():
    specs = {arm: load_distill(REPO / f"jobs/distill-stories-{arm}.yaml") for arm in ("sft", "all", "kd", "gkd")}
    base = specs["sft"].model_dump(exclude={"name"})
    for arm, changed in (("all", {"source"}), ("kd", {"training"}), ("gkd", {"training"})):
        other = specs[arm].model_dump(exclude={"name"})
        assert {k for k in base if base[k] != other[k]} == changed, arm
    assert specs["all"].source.use == "all" and specs["kd"].training.method == "kd"
    assert specs["gkd"].training.method == "gkd"
