"""Curation on planted data: exact, near (a few words edited) and paraphrased duplicates,
planted contamination; scores, the accepted view, explain and export."""
import json

import duckdb
import pytest

from factory.curation.decontaminate import BenchmarkError
from factory.curation.run import curate
from factory.explain import explain
from factory.export import export
from factory.keys import content_hash
from factory.spec import CurationSpec
from stores import Store
from stores.stats import job_stats

JOB = "j1"
BASE = ("Once upon a time a little girl named Lily found a red ball in the park. She kicked it high "
        "and it flew over the tall tree. Her dog Max ran after the ball and brought it back. Lily "
        "hugged Max and they played until the sun went down, happy and tired.")
NEAR = BASE.replace("tall tree", "big tree").replace("happy and tired", "happy and sleepy")
PARAPHRASE = ("A small girl called Lily discovered a red ball at the park. She kicked the ball up high and it "
              "went over a tall tree. Max, her dog, chased the ball and returned it. Lily gave Max a hug and the "
              "two of them played until sunset, tired but happy.")
OTHER = ("Tom the turtle wanted to see the sea. Every day he walked a little further along the sandy path. "
         "One morning he heard the waves and smelled the salt. He smiled, because slow steps had brought him home.")
GSM = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May."
CONTAMINATED = f"Here is a puzzle. {GSM} How many clips did she sell? Think and count."
TEXTS = {"s0": BASE, "s1": NEAR, "s2": PARAPHRASE, "s3": OTHER, "s4": CONTAMINATED, "s5": BASE}


def build(db, scores=None):
    """A tiny store with one job: reviewed, accepted samples (s5 is an exact duplicate of s0)."""
    scores = scores or {"s0": 6.0, "s1": 8.0, "s2": 7.0, "s3": 7.0, "s4": 9.0, "s5": 6.0}
    with Store(db) as store:
        con = store.con
        con.execute("INSERT INTO jobs (fingerprint, name, recipe, spec, decision_rule, num_samples, created_at) "
                    "VALUES (?, 'planted', 'tinystories', '{}', '{}', 6, now())", [JOB])
        for i, (sid, text) in enumerate(TEXTS.items()):
            con.execute("INSERT INTO seeds VALUES (?, ?, ?, '{}')", [f"seed{i}", JOB, i])
            dup = "s0" if sid == "s5" else None
            con.execute("""INSERT INTO samples (sample_id, job, seed_id, seed_index, text, content_hash, duplicate_of,
                           rule_checks, template, model) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 't@1', '{"model": "m"}')""",
                        [sid, JOB, f"seed{i}", i, text, content_hash(text), dup,
                         json.dumps({"out_of_vocabulary_share": 0.1, "has_verb": True, "has_noun": True,
                                     "has_adjective": False})])
            for r in range(2):
                con.execute("INSERT INTO reviews (review_id, job, sample_id, reviewer_index, scores, overall) "
                            "VALUES (?, ?, ?, ?, '{\"plot\": 5}', ?)", [f"{sid}r{r}", JOB, sid, r, scores[sid] + r])
            decision = "reject" if dup else "accept"
            con.execute("INSERT INTO verdicts (sample_id, job, decision, stage, reason) VALUES (?, ?, ?, 'reviewers', 'x')",
                        [sid, JOB, decision])


@pytest.fixture
def bench_file(tmp_path):
    path = tmp_path / "gsm8k_test.jsonl"
    path.write_text(json.dumps({"question": "Weng earns $12 an hour for babysitting.", "answer": "#### 10"}) + "\n"
                    + json.dumps({"question": GSM + " How many clips?", "answer": "#### 72"}) + "\n")
    return path


def config(bench_file, **kw):
    return CurationSpec(decontaminate=[{"path": str(bench_file)}], **kw)


@pytest.mark.model  # all-MiniLM-L6-v2 (sentence-transformers) embeds the texts
def test_planted_duplicates_and_contamination_are_found(tmp_path, bench_file):
    db = tmp_path / "c.duckdb"
    build(db)
    with Store(db) as store:
        summary = curate(store.con, JOB, "tinystories", config(bench_file, semantic_threshold=0.85))
        con = store.con
        near = con.execute("SELECT sample_id, kept FROM dedup_clusters WHERE method = 'near' ORDER BY 1").fetchall()
        # s0/s1 differ by four words; the better-reviewed s1 is kept
        assert near == [("s0", False), ("s1", True)]
        semantic = dict(con.execute("SELECT sample_id, kept FROM dedup_clusters WHERE method = 'semantic'").fetchall())
        assert {"s1", "s2"} <= set(semantic) and "s3" not in semantic  # the paraphrase, not the turtle
        hits = con.execute("SELECT sample_id, benchmark, benchmark_row, ngram_size, ngram FROM contamination "
                           "WHERE method = 'ngram'").fetchall()
        assert {(h[0], h[2], h[3]) for h in hits} == {("s4", 1, 8), ("s4", 1, 13)}
        assert all(h[1] == "gsm8k_test.jsonl" and len(h[4].split()) == h[3] for h in hits)
        accepted = {r[0] for r in con.execute("SELECT sample_id FROM accepted").fetchall()}
        assert "s3" in accepted and not accepted & {"s0", "s4", "s5"}
        scores = dict(con.execute("SELECT sample_id, score FROM quality_scores").fetchall())
        assert scores["s0"] == 0.0 and scores["s4"] == 0.0 and scores["s5"] == 0.0 and scores["s3"] > 0.3
        assert summary["exact_duplicates"] == 1 and summary["contaminated"] == 1


def test_a_failing_pass_leaves_the_previous_state(tmp_path, bench_file):
    db = tmp_path / "c.duckdb"
    build(db)
    with Store(db) as store:
        curate(store.con, JOB, "tinystories", config(bench_file, semantic=False))
        before = store.con.execute("SELECT * FROM quality_scores ORDER BY 1").fetchall()
        with pytest.raises(BenchmarkError, match=r"has no field 'problem'; its fields: answer, question"):
            curate(store.con, JOB, "tinystories", CurationSpec(decontaminate=[{"path": str(bench_file), "field": "problem"}]))
        assert store.con.execute("SELECT * FROM quality_scores ORDER BY 1").fetchall() == before
        assert store.con.execute("SELECT count(*) FROM contamination WHERE method = 'ngram'").fetchone()[0] == 2


@pytest.mark.model  # all-MiniLM-L6-v2 (sentence-transformers) embeds the texts
def test_rerun_reuses_embeddings_and_gives_the_same_result(tmp_path, bench_file):
    db = tmp_path / "c.duckdb"
    build(db)
    with Store(db) as store:
        first = curate(store.con, JOB, "tinystories", config(bench_file))
        n = store.con.execute("SELECT count(*) FROM embeddings").fetchone()[0]
        assert n == 5  # every non-exact-duplicate sample
        assert curate(store.con, JOB, "tinystories", config(bench_file)) == first
        assert store.con.execute("SELECT count(*) FROM embeddings").fetchone()[0] == n


@pytest.mark.model  # all-MiniLM-L6-v2 (sentence-transformers) embeds the texts
def test_stats_explain_and_export_after_curation(tmp_path, bench_file):
    db = tmp_path / "c.duckdb"
    build(db)
    with Store(db) as store:
        curate(store.con, JOB, "tinystories", config(bench_file, semantic_threshold=0.85))
    con = duckdb.connect(str(db), read_only=True)
    s = job_stats(con, JOB)
    assert s["curated"] and s["duplicate_rates"]["exact"] == round(1 / 6, 4)
    assert s["duplicate_rates"]["near"] == round(1 / 6, 4)
    assert s["contamination"]["samples"] == 1
    assert s["acceptance_by_template"]["t@1"]["samples"] == 6
    assert 0 < s["diversity"]["distinct_3gram_ratio"] <= 1
    story = explain(con, "s0")
    assert story["dedup"][0]["method"] == "near" and story["dedup"][0]["kept"] is False
    assert story["in_accepted_view"] is False and story["quality"]["score"] == 0.0
    assert explain(con, "s4")["contamination"][0]["ngram_size"] in (8, 13)
    with pytest.raises(LookupError, match="no sample"):
        explain(con, "nope")
    for fmt in ("parquet", "jsonl", "hf"):
        out = tmp_path / f"out-{fmt}"
        result = export(con, JOB, fmt, out)
        assert result["rows"] == s["accepted_view_rows"] and (out / "README.md").exists()
        card = (out / "README.md").read_text()
        assert "## Lineage" in card and "t@1" in card
    from datasets import load_from_disk

    ds = load_from_disk(str(tmp_path / "out-hf"))
    assert set(ds["sample_id"]) == {r[0] for r in con.execute("SELECT sample_id FROM accepted").fetchall()}
    with pytest.raises(FileExistsError):
        export(con, JOB, "jsonl", tmp_path / "out-jsonl")
    with pytest.raises(ValueError, match="--format must be one of parquet, jsonl, hf"):
        export(con, JOB, "csv", tmp_path / "x")


def test_alpha_and_distinct_ngrams_in_sql_match_the_reference_implementations(tmp_path):
    """The stats compute Krippendorff's alpha and the 3-gram ratio in SQL (they must scale to
    1M samples); the krippendorff package and plain Python are the references."""
    import random
    import re

    import krippendorff
    import numpy as np

    from stores.curation_stats import diversity, krippendorff_alpha

    db = tmp_path / "a.duckdb"
    build(db)
    rng = random.Random(5)
    with Store(db) as store:
        con = store.con
        con.execute("DELETE FROM reviews")
        data = np.full((3, 6), np.nan)
        for u, sid in enumerate(TEXTS):
            for r in range(rng.choice([2, 3])):
                score = rng.choice([1.0, 2.5, 4.0, 6.5, 9.0])
                data[r, u] = score
                con.execute("INSERT INTO reviews (review_id, job, sample_id, reviewer_index, scores, overall) "
                            "VALUES (?, ?, ?, ?, '{}', ?)", [f"{sid}-{r}", JOB, sid, r, score])
        expected = krippendorff.alpha(reliability_data=data, level_of_measurement="interval")
        assert krippendorff_alpha(con, JOB) == round(expected, 4)
        texts = [t for (t,) in con.execute("SELECT text FROM accepted WHERE job = ?", [JOB]).fetchall()]
        grams = [tuple(w[i:i + 3]) for w in (re.findall(r"\w+", t.lower()) for t in texts) for i in range(len(w) - 2)]
        assert diversity(con, JOB)["distinct_3gram_ratio"] == round(len(set(grams)) / len(grams), 4)
