"""Semantic cross-job and corpus dedup (MiniLM, real embeddings) on planted texts: a
paraphrase of another job's accepted story, or of a corpus row, is removed; an unrelated story
stays; outside embeddings are stored so a second pass embeds nothing."""
import json

import pytest

from factory.curation import semantic_dedup
from factory.curation.run import curate
from factory.keys import content_hash
from factory.spec import CurationSpec
from stores import Store

BASE = ("Once upon a time a little girl named Lily found a red ball in the park. She kicked it high "
        "and it flew over the tall tree. Her dog Max ran after the ball and brought it back. Lily "
        "hugged Max and they played until the sun went down, happy and tired.")
PARAPHRASE = ("A small girl called Lily discovered a red ball at the park. She kicked the ball up high and it "
              "went over a tall tree. Max, her dog, chased the ball and returned it. Lily gave Max a hug and the "
              "two of them played until sunset, tired but happy.")
OTHER = ("Tom the turtle wanted to see the sea. Every day he walked a little further along the sandy path. "
         "One morning he heard the waves and smelled the salt. He smiled, because slow steps had brought him home.")
SETTINGS = {"semantic_threshold": 0.85, "semantic_contamination": False}  # 0.85 as tests/curation/test_curation.py


def build(db):
    """Job x accepted BASE; job y made PARAPHRASE and OTHER (both accepted)."""
    with Store(db) as store:
        con = store.con
        for job, texts in (("x", {"x0": BASE}), ("y", {"y0": PARAPHRASE, "y1": OTHER})):
            con.execute("INSERT INTO jobs (fingerprint, name, recipe, spec, decision_rule, num_samples) "
                        "VALUES (?, ?, 'tinystories', '{}', '{}', ?)", [job, f"job-{job}", len(texts)])
            for i, (sid, text) in enumerate(texts.items()):
                con.execute("INSERT INTO seeds VALUES (?, ?, ?, '{}')", [f"{sid}seed", job, i])
                con.execute("""INSERT INTO samples (sample_id, job, seed_id, seed_index, text, content_hash)
                               VALUES (?, ?, ?, ?, ?, ?)""", [sid, job, f"{sid}seed", i, text, content_hash(text)])
                con.execute("INSERT INTO verdicts (sample_id, job, decision, stage, reason) "
                            "VALUES (?, ?, 'accept', 'reviewers', 'x')", [sid, job])


@pytest.fixture
def counted_embed(monkeypatch):
    calls = []
    real = semantic_dedup.embed

    def embed(texts, *a, **kw):
        calls.append(list(texts))
        return real(texts, *a, **kw)

    monkeypatch.setattr(semantic_dedup, "embed", embed)
    return calls


@pytest.mark.model  # all-MiniLM-L6-v2 (sentence-transformers) embeds the texts
def test_paraphrase_of_another_jobs_story_is_removed(tmp_path, counted_embed):
    db = tmp_path / "s.duckdb"
    build(db)
    config = CurationSpec(**SETTINGS, against_jobs=["job-x"])
    with Store(db) as store:
        summary = curate(store.con, "y", "tinystories", config)
        rows = store.con.execute("SELECT sample_id, method, kind, against, other_sample_id, similarity "
                                 "FROM outside_duplicates").fetchall()
        assert [r[:5] for r in rows] == [("y0", "semantic", "job", "x", "x0")] and rows[0][5] >= 0.85
        assert summary["outside_semantic"] == 1 and summary["outside_removed"] == 1
        assert store.con.execute("SELECT sample_id FROM accepted WHERE job = 'y'").fetchall() == [("y1",)]
        # x's embedding was computed by y's pass and stored: a second pass embeds nothing.
        assert store.con.execute("SELECT count(*) FROM embeddings WHERE sample_id = 'x0'").fetchone() == (1,)
        counted_embed.clear()
        assert curate(store.con, "y", "tinystories", config) == summary
        assert counted_embed == []


@pytest.mark.model  # all-MiniLM-L6-v2 (sentence-transformers) embeds the texts
def test_paraphrase_of_a_corpus_row_is_removed_and_the_corpus_embedded_once(tmp_path, counted_embed):
    db = tmp_path / "s.duckdb"
    build(db)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"story": t}) for t in
                                ["A robot learned to bake bread in a small village kitchen.", "", BASE]) + "\n")
    config = CurationSpec(**SETTINGS, against_corpus=[{"path": str(corpus), "field": "story"}])
    with Store(db) as store:
        curate(store.con, "y", "tinystories", config)
        rows = store.con.execute("SELECT sample_id, method, kind, against_name, other_row FROM outside_duplicates"
                                 ).fetchall()
        assert rows == [("y0", "semantic", "corpus", "corpus.jsonl", 2)]
        counted_embed.clear()
        curate(store.con, "y", "tinystories", config)
        assert counted_embed == []  # the corpus rows come from benchmark_embeddings (file SHA-256 + field)


def test_semantic_off_keeps_the_paraphrase(tmp_path):
    """The control: the same pass with semantic off removes nothing (exact and near miss it)."""
    db = tmp_path / "s.duckdb"
    build(db)
    with Store(db) as store:
        summary = curate(store.con, "y", "tinystories", CurationSpec(semantic=False, semantic_contamination=False,
                                                                     against_jobs=["job-x"]))
    assert summary["outside_removed"] == 0
