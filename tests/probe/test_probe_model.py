"""`factory probe` on the real embedded SmolLM2 model: a small TinyStories job (local
executor, one reviewer, a decision rule loose enough that the stories are accepted), then a
probe with two corruption kinds. ~1 minute on 2 cores."""
import json

import pytest
import yaml

from support import query

from factory.cli import main
from factory.recipes.tinystories import TinyStories
from factory.spec import DecisionRule

pytestmark = pytest.mark.model

SAMPLES = 4


def loose_decision() -> dict:
    # Accept whatever the one reviewer says; gates the decision rule offers are opened when
    # this version has them (the probe is under test here, not the gates).
    rule = {"accept_mean": 1.0, "max_spread": 10.0, "reject_mean": 1.0}
    fields = {**DecisionRule.model_fields, **getattr(TinyStories, "DecisionFields", DecisionRule).model_fields}
    if "require_seed_words" in fields:
        rule["require_seed_words"] = False
    if "truncated" in fields:
        rule["truncated"] = "keep"
    if "text_gates" in fields:
        rule["text_gates"] = "signal"
    return rule


def test_probe_on_the_embedded_model(tmp_path, capsys):
    job = {
        "name": "probe-real", "recipe": "tinystories", "num_samples": SAMPLES, "seed": 5, "reviewers": 1,
        "roles": {
            "generator": {"template": "tinystories/generator@1", "sampling": {"max_tokens": 80}},
            "reviewer": {"template": "tinystories/reviewer@1", "sampling": {"max_tokens": 80, "temperature": 0.7}},
        },
        "decision": loose_decision(),
        "execution": {"executor": "local", "threads_per_engine": 2, "batch_size": SAMPLES},
    }
    path, db = tmp_path / "job.yaml", tmp_path / "real.duckdb"
    path.write_text(yaml.safe_dump(job))
    assert main(["run", str(path), "--db", str(db), "--quiet"]) == 0
    accepted = query(db, "SELECT count(*) FROM verdicts WHERE decision = 'accept'")[0][0]
    assert accepted >= 2, "the loose rule should accept most stories"
    capsys.readouterr()
    assert main(["probe", str(path), "--db", str(db), "--kinds", "word_salad,truncation", "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert f"has {accepted} accepted samples (fewer than 10)" in captured.err
    assert set(out["by_kind"]) == {"word_salad", "truncation"}
    # every accepted story that is not an exact duplicate; each kind made or counted as skipped
    assert 2 <= out["samples"] == out["accepted"] <= accepted
    kinds = out["by_kind"].values()
    # a corruption whose every review is unparseable (or whose original has none) is unscored
    assert out["pairs"] == sum(k["pairs"] for k in kinds) and all(k["made"] == k["pairs"] + k["unscored"]
                                                                   for k in kinds)
    assert sum(k["made"] + k["skipped"] for k in kinds) == 2 * out["samples"] and out["pairs"] >= 1
    assert out["model_calls"] == sum(k["made"] for k in kinds)  # one reviewer; the originals' are cached
    assert out["pairwise_accuracy"] is None or 0.0 <= out["pairwise_accuracy"] <= 1.0
    rows = query(db, "SELECT kind, scores, lineage FROM probe_items")
    assert len(rows) == out["samples"] + sum(k["made"] for k in kinds)  # an item per original and corruption
    models = {c["model"]["model"] for _, _, lineage in rows for c in json.loads(lineage)}
    assert models == {"smollm2-135m-instruct-q4_1"}
