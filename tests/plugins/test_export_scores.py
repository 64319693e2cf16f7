"""Exports carry the scores (issue 24 item 6): per-axis review means, review_mean,
quality_score float64 before and after curation, signals and the deciding stage as columns;
the dataset card has the axis table and the gate breakdown."""
from __future__ import annotations

import duckdb
import pyarrow.parquet as pq
import pytest

from factory.api import curate, export
from factory.pipeline import run_job
from factory.spec import parse_job

FAKE = {"backend": "fake", "model": "fake"}


def tiny_job(db) -> dict:
    return {"name": "scored", "recipe": "tinystories", "num_samples": 12, "seed": 3, "reviewers": 2,
            "roles": {r: {**FAKE, "template": f"tinystories/{r}@1"} for r in ("generator", "reviewer", "adjudicator")},
            "decision": {"require_seed_words": False, "text_gates": "signal"},
            "curation": {"semantic": False, "semantic_contamination": False},
            "execution": {"executor": "local", "batch_size": 4}, "db": str(db)}


@pytest.fixture
def scored_db(tmp_path):
    db = tmp_path / "scored.duckdb"
    run_job(parse_job(tiny_job(db)), db=db)
    return db


def test_score_columns_and_a_schema_that_curation_does_not_change(scored_db, tmp_path):
    with pytest.warns(UserWarning):
        out = export(scored_db, "scored", format="parquet", out=tmp_path / "before")
    before = pq.read_table(tmp_path / "before" / "data.parquet")
    assert out["rows"] == before.num_rows > 0
    schema = {f.name: str(f.type) for f in before.schema}
    for axis in ("grammar", "creativity", "consistency", "plot"):  # age_group is a label, not a score
        assert schema[f"review_{axis}"] == "double"
    assert schema["quality_score"] == schema["review_mean"] == "double"
    assert before.column("quality_score").null_count == before.num_rows  # not curated yet: null, still float
    assert schema["signal_likelihood"] == "double" and "string" in schema["decided_by"]
    assert "review_age_group" not in schema
    con = duckdb.connect(str(scored_db), read_only=True)
    first = before.column("sample_id")[0].as_py()
    want = con.execute("SELECT avg((scores->>'grammar')::DOUBLE), avg(overall) FROM reviews WHERE sample_id = ?",
                       [first]).fetchone()
    con.close()
    assert before.column("review_grammar")[0].as_py() == pytest.approx(want[0])
    assert before.column("review_mean")[0].as_py() == pytest.approx(want[1])

    curate(tiny_job(scored_db), db=scored_db)
    export(scored_db, "scored", format="parquet", out=tmp_path / "after")
    after = pq.read_table(tmp_path / "after" / "data.parquet")
    assert {f.name: str(f.type) for f in after.schema} == schema
    assert after.column("quality_score").null_count == 0


def test_the_card_has_the_axis_table_and_the_gate_breakdown(scored_db, tmp_path):
    with pytest.warns(UserWarning):
        export(scored_db, "scored", format="jsonl", out=tmp_path / "out")
    card = (tmp_path / "out" / "README.md").read_text()
    assert "## Review scores by axis\n| axis | mean | stddev | reviews |" in card
    assert "| grammar |" in card and "| overall |" in card
    assert "## Gates and signals\n| stage | rejected |" in card
    assert "| signal | samples | mean | min | max | verdicts it decided |" in card and "| likelihood |" in card
