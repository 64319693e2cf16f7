"""The recipes written against the new shape (issue 10): instruct (SFT chat messages) and
preference (DPO prompt/chosen/rejected), exported in the columns TRL's trainers read."""
from __future__ import annotations

import json

import pytest

import fakes
from support import fake_job, query

from factory.api import curate, export
from factory.pipeline import run_job
from factory.spec import parse_job


def run(tmp_path, recipe: str, roles: tuple[str, ...], **extra):
    job = fake_job(recipe=recipe, num_samples=10, roles={r: {"backend": "fake", "model": "fake"} for r in roles},
                   **extra)
    db = tmp_path / f"{recipe}.duckdb"
    run_job(parse_job(job), db=db)
    curate(job, db=db)
    return db


@pytest.mark.model  # curate() embeds the samples with all-MiniLM-L6-v2 (semantic dedup is on)
def test_instruct_exports_chat_messages_that_datasets_loads(tmp_path):
    import datasets

    db = run(tmp_path, "instruct", ("generator", "reviewer", "adjudicator"))
    result = export(db, out=tmp_path / "sft", format="hf")
    ds = datasets.load_from_disk(str(tmp_path / "sft"))
    assert result["rows"] == len(ds) > 0 and "messages" in ds.column_names and "text" not in ds.column_names
    for messages in ds["messages"]:
        assert [m["role"] for m in messages] == ["user", "assistant"] and all(m["content"] for m in messages)
    payloads = [json.loads(p) for (p,) in query(db, "SELECT payload FROM accepted")]
    assert sorted(m[0]["content"] for m in ds["messages"]) == sorted(p["instruction"] for p in payloads)
    card = (tmp_path / "sft" / "README.md").read_text()
    assert "size_categories: [n<1K]" in card and "`messages`" in card and "Curation ran at" in card
    assert "long_solution" not in card


@pytest.mark.model  # curate() embeds the samples with all-MiniLM-L6-v2 (semantic dedup is on)
def test_preference_pairs_best_and_worst_candidates_by_margin(tmp_path):
    db = run(tmp_path, "preference", ("prompt_writer", "generator", "reviewer"), reviewers=2,
             options={"candidates": 3, "min_margin": 0.5})
    candidates = query(db, "SELECT count(*) FROM solutions WHERE kind = 'candidate'")[0][0]
    assert candidates == 30  # 10 prompts x 3 candidates, every attempt kept
    pairs = query(db, "SELECT s.sample_id, s.payload, v.decision FROM samples s "
                      "JOIN verdicts v USING (sample_id) WHERE v.stage = 'margin'")
    assert pairs
    for sample, payload, decision in pairs:
        p = json.loads(payload)
        means = {}
        for label, overall in query(db, f"SELECT label, overall FROM reviews WHERE sample_id = '{sample}'"):
            means.setdefault(int(label.split(":")[1]), []).append(overall)
        means = {j: sum(v) / len(v) for j, v in means.items()}
        assert p["chosen_score"] == max(means.values()) and p["rejected_score"] == min(means.values())
        assert (decision == "accept") == (p["margin"] >= 0.5)
    import datasets

    export(db, out=tmp_path / "dpo", format="hf")
    ds = datasets.load_from_disk(str(tmp_path / "dpo"))
    assert {"prompt", "chosen", "rejected"} <= set(ds.column_names) and len(ds) > 0
    assert all(c != r for c, r in zip(ds["chosen"], ds["rejected"]))  # len(ds) > 0 above


@pytest.mark.model  # curate() embeds the samples with all-MiniLM-L6-v2 (semantic dedup is on)
def test_the_fake_answers_any_schema_and_serves_a_script_first(tmp_path):
    fakes.script('{"instruction": "Tell me a fact about bees, please.", "response": "Bees dance to talk."}')
    db = run(tmp_path, "instruct", ("generator", "reviewer", "adjudicator"))
    first = json.loads(query(db, "SELECT payload FROM samples ORDER BY seed_index LIMIT 1")[0][0])
    assert first == {"instruction": "Tell me a fact about bees, please.", "response": "Bees dance to talk."}
    assert fakes.SCRIPT == [] and len(fakes.CALLS) > 10
