"""The partitioned semantic dedup (k-means + multi-probe) against the exact all-pairs method:
recall on planted near-duplicates, nothing under the threshold, determinism, and a curation
pass that comes out identical to the exact one."""
import json

import numpy as np
import pandas as pd
import pytest

from factory.curation import semantic_dedup
from factory.curation.partitions import partitioned_pairs
from factory.curation.run import curate
from factory.keys import content_hash
from factory.spec import CurationSpec
from stores import Store

THRESHOLD, DIM = 0.95, 384


def planted(rows: int, seed: int = 11) -> np.ndarray:
    """Seeded unit Gaussians plus 4% near-copies with per-dimension noise 0.005-0.025:
    cosine ~0.89-0.995 (1 / sqrt(1 + 384 sigma^2)), so some copies fall under 0.95 and a
    method that let them through would be caught; also chains (a copy of a copy)."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((rows, DIM), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    n = rows // 25
    chosen = rng.permutation(rows)[:2 * n]
    sigma = rng.uniform(0.005, 0.025, size=(n, 1)).astype(np.float32)
    copies = v[chosen[:n]] + sigma * rng.standard_normal((n, DIM), dtype=np.float32)
    v[chosen[n:]] = copies / np.linalg.norm(copies, axis=1, keepdims=True)
    return v


def exact_set(vectors):
    ids = [str(i) for i in range(len(vectors))]
    return {(int(a), int(b)) for a, b, _ in semantic_dedup.exact_pairs(ids, vectors, THRESHOLD)}


def test_partitioned_recall_and_no_pair_under_the_threshold():
    v = planted(5000)
    exact = exact_set(v)
    assert 100 <= len(exact) < 200  # the planted copies over 0.95 (200 planted, some under)
    i, j, sims = partitioned_pairs(v, THRESHOLD)
    found = set(zip(i.tolist(), j.tolist()))
    assert len(found) == len(i) and bool((i < j).all())  # each pair once, in (i < j) form
    assert len(found & exact) >= 0.95 * len(exact)
    assert found <= exact  # nothing the exact method would not report
    recomputed = np.einsum("nd,nd->n", v[i].astype(np.float64), v[j].astype(np.float64))
    assert bool((sims >= THRESHOLD).all()) and np.allclose(recomputed, sims, atol=1e-5)


def test_partitioned_is_deterministic():
    v = planted(3000, seed=3)
    first, second = partitioned_pairs(v, THRESHOLD), partitioned_pairs(v.copy(), THRESHOLD)
    for a, b in zip(first, second):
        assert np.array_equal(a, b)


def test_similar_pairs_dispatch_and_bad_method():
    v = planted(500, seed=4)
    ids = [f"s{i}" for i in range(len(v))]
    auto = semantic_dedup.similar_pairs(ids, v, THRESHOLD)  # 500 < EXACT_BELOW: the exact method
    assert auto == semantic_dedup.exact_pairs(ids, v, THRESHOLD)
    part = semantic_dedup.similar_pairs(ids, v, THRESHOLD, method="partitioned")
    assert {p[:2] for p in part} <= {p[:2] for p in auto}
    with pytest.raises(ValueError, match="expected auto, exact or partitioned, got 'fast'"):
        semantic_dedup.similar_pairs(ids, v, THRESHOLD, method="fast")


JOB = "jp"


def build(db, texts: list[str]):
    """A store with one tinystories job whose samples are all reviewed and accepted; rows go
    in as DataFrames (one INSERT per table: row-by-row took ~10 s for 600 samples)."""
    checks = json.dumps({"out_of_vocabulary_share": 0.1, "has_verb": True, "has_noun": True, "has_adjective": False})
    n = len(texts)
    sids, seeds = [f"s{i}" for i in range(n)], [f"seed{i}" for i in range(n)]
    frames = {
        "seed_rows": pd.DataFrame({"seed_id": seeds, "job": JOB, "seed_index": range(n), "params": "{}"}),
        "sample_rows": pd.DataFrame({"sample_id": sids, "job": JOB, "seed_id": seeds, "seed_index": range(n),
                                     "text": texts, "content_hash": [content_hash(t) for t in texts],
                                     "rule_checks": checks}),
        "review_rows": pd.DataFrame({"review_id": [f"{s}r" for s in sids], "job": JOB, "sample_id": sids,
                                     "overall": np.random.default_rng(0).integers(3, 10, n).astype(float)}),
    }
    with Store(db) as store:
        con = store.con
        for name, frame in frames.items():
            con.register(name, frame)
        con.execute("INSERT INTO jobs (fingerprint, name, recipe, spec, decision_rule, num_samples, created_at) "
                    "VALUES (?, 'partitioned', 'tinystories', '{}', '{}', ?, now())", [JOB, n])
        con.execute("INSERT INTO seeds SELECT seed_id, job, seed_index, params FROM seed_rows")
        con.execute("""INSERT INTO samples (sample_id, job, seed_id, seed_index, text, content_hash, duplicate_of,
                       rule_checks, template, model)
                       SELECT sample_id, job, seed_id, seed_index, text, content_hash, NULL, rule_checks, 't@1',
                              '{"model": "m"}' FROM sample_rows""")
        con.execute("""INSERT INTO reviews (review_id, job, sample_id, reviewer_index, scores, overall)
                       SELECT review_id, job, sample_id, 0, '{"plot": 5}', overall FROM review_rows""")
        con.execute("""INSERT INTO verdicts (sample_id, job, decision, stage, reason)
                       SELECT sample_id, job, 'accept', 'reviewers', 'x' FROM sample_rows""")


def test_curation_pass_is_identical_with_either_method(tmp_path, monkeypatch):
    # 600 samples, their embeddings planted vectors (the model is not loaded): with
    # EXACT_BELOW at 0 the pass runs the partitioned method (k = 54, 5 probes).
    vectors = planted(600, seed=7)
    rng = np.random.default_rng(1)
    words = [f"w{n}" for n in range(5000)]
    texts = [" ".join(rng.choice(words, 40)) for _ in range(len(vectors))]
    by_text = dict(zip(texts, vectors))
    monkeypatch.setattr(semantic_dedup, "embed", lambda batch: np.stack([by_text[t] for t in batch]))
    results = []
    for name, exact_below in (("exact", 10**9), ("partitioned", 0)):
        monkeypatch.setattr(semantic_dedup, "EXACT_BELOW", exact_below)
        db = tmp_path / f"{name}.duckdb"
        build(db, texts)
        with Store(db) as store:
            summary = curate(store.con, JOB, "tinystories", CurationSpec())
            con = store.con
            results.append((summary,
                            con.execute("SELECT method, cluster_id, sample_id, kept, similarity FROM dedup_clusters "
                                        "ORDER BY ALL").fetchall(),
                            con.execute("SELECT sample_id, score FROM quality_scores ORDER BY 1").fetchall(),
                            con.execute("SELECT sample_id FROM accepted ORDER BY 1").fetchall()))
    exact, part = results
    assert exact[0]["semantic_clusters"] > 10  # planted copies over 0.95 became clusters
    assert part == exact
