"""The curation pass's memory fixes (bench/curation_rss.py: a 1M-sample pass) change no
output: each rewritten function gives exactly what its earlier, all-in-memory form gave
(that form is kept here as the reference), on inputs cut into several chunks."""
from __future__ import annotations

import numpy as np
from rensa import RMinHashLSH

from factory.curation import near_dedup, partitions
from stores import Store
from stores import curation as store_curation
from stores.curation import DIMENSIONS, cached_embeddings, embedding_matrix


def _corpus(n: int = 300, seed: int = 5) -> tuple[list[str], list[str]]:
    """Random 40-word texts; every 6th is the one before with one word changed (Jaccard >= 35/41)."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(400)]
    texts = []
    for i in range(n):
        if i % 6 == 5:
            words = texts[-1].split()
            words[int(rng.integers(0, len(words)))] = "changed"
            texts.append(" ".join(words))
        else:
            texts.append(" ".join(vocab[k] for k in rng.integers(0, len(vocab), 40)))
    return [f"s{i}" for i in range(n)], texts


def _near_pairs_all_at_once(ids, texts, threshold, shingle_words=3, num_perm=128):
    """near_duplicate_pairs before the fix: every shingle list and set held at once, rensa's LSH."""
    sets = [near_dedup.shingles(t, shingle_words) for t in texts]
    sketches = near_dedup.sketches_of(sets, num_perm)
    exact = [frozenset(s) for s in sets]
    lsh = RMinHashLSH(threshold=threshold, num_perm=num_perm, num_bands=near_dedup.bands_for(num_perm, threshold))
    for i, sketch in enumerate(sketches):
        lsh.insert(i, sketch)
    pairs = []
    for i, j in [(i, j) for i, sketch in enumerate(sketches) for j in lsh.query(sketch) if j > i]:
        similarity = near_dedup.jaccard(exact[i], exact[j])
        if similarity >= threshold:
            pairs.append((ids[i], ids[j], similarity))
    return pairs


def test_near_pairs_unchanged_by_chunked_shingling(monkeypatch):
    ids, texts = _corpus()
    want = _near_pairs_all_at_once(ids, texts, 0.8)
    monkeypatch.setattr(near_dedup, "SHINGLE_CHUNK", 7)  # 43 chunks, the last one short
    got = near_dedup.near_duplicate_pairs(ids, texts, 0.8)
    # Same pairs and Jaccards; the order is now (i, j) sorted (rensa's query order was its own,
    # and clusters_from_pairs does not depend on it).
    assert got == sorted(want, key=lambda p: (int(p[0][1:]), int(p[1][1:])))
    assert len(want) >= 45  # the 50 planted copies (LSH may miss one or two): the comparison is not of empty lists


def test_banded_pairs_equal_rensa_lsh_candidates():
    """Runs of equal bands, including one of three rows and a row equal on two bands."""
    ids, texts = _corpus(120, seed=9)
    texts[30] = texts[31] = texts[29]  # a run of three identical texts
    sketches = near_dedup.sketches_of([near_dedup.shingles(t, 3) for t in texts], 128)
    lsh = RMinHashLSH(threshold=0.5, num_perm=128, num_bands=near_dedup.bands_for(128, 0.5))
    for i, sketch in enumerate(sketches):
        lsh.insert(i, sketch)
    want = sorted({(i, j) for i, sketch in enumerate(sketches) for j in lsh.query(sketch) if j > i})
    assert near_dedup.candidate_pairs(sketches, 0.5, 128) == want
    assert (29, 30) in want and (29, 31) in want and (30, 31) in want and len(want) >= 20


def test_embedding_matrix_matches_cached_embeddings(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    stored = {f"s{i}": rng.standard_normal(DIMENSIONS).astype(np.float32) for i in range(0, 40, 3)}
    stored["other-model-only"] = rng.standard_normal(DIMENSIONS).astype(np.float32)
    with Store(tmp_path / "e.duckdb") as store:
        con = store.con
        for sid, v in stored.items():
            model = "other" if sid == "other-model-only" else "m"
            con.execute("INSERT INTO embeddings VALUES (?, ?, ?::FLOAT[384])", [sid, model, v.tolist()])
        ids = [f"s{i}" for i in range(40)][::-1] + ["other-model-only"]  # not the table's order
        monkeypatch.setattr(store_curation, "READ_CHUNK", 4)
        vectors, found = embedding_matrix(con, "m", ids)
        cached = cached_embeddings(con, "m", ids)  # the pass's earlier read: a dict, then stacked
    assert found.tolist() == [i in cached for i in ids] and found.sum() == 14
    want = np.stack([cached.get(i, np.zeros(DIMENSIONS, np.float32)) for i in ids])
    assert vectors.dtype == np.float32 and np.array_equal(vectors, want)


def _partitioned_with_sorted_copy(vectors, threshold, probes=partitions.PROBES, k=None, seed=0):
    """partitioned_pairs before the fix: one sorted copy of every vector."""
    n = len(vectors)
    k = k or partitions.partition_count(n, probes)
    home, probed = partitions.nearest_centroids(vectors, partitions.centroids(vectors, k, seed), probes)
    by_home = np.argsort(home, kind="stable")
    sorted_vectors = vectors[by_home]
    home_bounds = np.searchsorted(home[by_home], np.arange(k + 1))
    flat = probed.ravel()
    by_probe = np.argsort(flat, kind="stable")
    query_rows = by_probe // probed.shape[1]
    probe_bounds = np.searchsorted(flat[by_probe], np.arange(k + 1))
    found_i, found_j, found_s = [], [], []
    for c in range(k):
        lo, hi = home_bounds[c], home_bounds[c + 1]
        q = query_rows[probe_bounds[c]:probe_bounds[c + 1]]
        if hi == lo or len(q) == 0:
            continue
        sims = vectors[q] @ sorted_vectors[lo:hi].T
        r, col = np.nonzero(sims >= threshold)
        if len(r):
            a, b = q[r], by_home[lo + col]
            keep = a != b
            found_i.append(np.minimum(a, b)[keep])
            found_j.append(np.maximum(a, b)[keep])
            found_s.append(sims[r, col][keep])
    i, j, s = np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_s)
    _, first = np.unique(i * n + j, return_index=True)
    return i[first], j[first], s[first]


def test_partitioned_pairs_unchanged_without_the_sorted_copy():
    rng = np.random.default_rng(11)
    vectors = rng.standard_normal((3000, DIMENSIONS)).astype(np.float32)
    vectors[1::50] = vectors[0::50][:len(vectors[1::50])] + 0.01 * rng.standard_normal((60, DIMENSIONS))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    want = _partitioned_with_sorted_copy(vectors, 0.95)
    got = partitions.partitioned_pairs(vectors, 0.95)
    assert len(want[0]) >= 55  # the 60 planted pairs (cosine ~0.98), less any across partition borders
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and np.array_equal(a, b)
