"""One-sided duplicate search: for each query text (a job's samples), its closest target text
(other jobs' samples, corpus rows) at or above a threshold. Unlike near_dedup/semantic_dedup,
which pair every text with every other, targets are never compared with each other: a corpus
full of repeated rows costs no pairs.

Near: MinHash-LSH (rensa) over the targets' word shingles, queried with each sample's sketch,
every candidate checked on its exact shingle Jaccard (as near_dedup.py does, same seed and
bands). Semantic: cosine over unit vectors, exact in blocks below EXACT_PAIRS query x target
pairs, else through k-means partitions with multi-probe both ways (partitions.py)."""
from __future__ import annotations

import numpy as np
from rensa import RMinHash, RMinHashLSH
from threadpoolctl import threadpool_limits  # via sentence-transformers -> scikit-learn

from factory.curation.near_dedup import SEED, bands_for, shingles
from factory.curation.partitions import PROBES, centroids, nearest_centroids, partition_count

# Exact below the query x target pairs the in-job exact method compares at its crossover
# (semantic_dedup.EXACT_BELOW = 20k vectors: 20k^2 / 2 = 2e8 dot products, ~2.6 s here).
EXACT_PAIRS = 200_000_000
BLOCK_ROWS = 1024
TILE_COLUMNS = 4096
SKETCH_CHUNK = 10_000  # targets sketched per rensa call: shingle lists of one chunk held at a time


def near_matches(queries: list[str], targets: list[str], threshold: float, shingle_words: int = 3,
                 num_perm: int = 128) -> list[tuple[int, int, float]]:
    """(query index, target index, Jaccard) for each query whose best target has exact shingle
    Jaccard >= threshold; ties go to the earliest target."""
    if not queries or not targets:
        return []
    lsh = RMinHashLSH(threshold=threshold, num_perm=num_perm, num_bands=bands_for(num_perm, threshold))
    for start in range(0, len(targets), SKETCH_CHUNK):
        chunk = [shingles(t, shingle_words) for t in targets[start:start + SKETCH_CHUNK]]
        for offset, sketch in enumerate(RMinHash.from_token_sets(chunk, num_perm=num_perm, seed=SEED)):
            lsh.insert(start + offset, sketch)
    query_sets = [shingles(q, shingle_words) for q in queries]
    found = []
    for i, sketch in enumerate(RMinHash.from_token_sets(query_sets, num_perm=num_perm, seed=SEED)):
        mine = frozenset(query_sets[i])
        best = None
        for j in sorted(lsh.query(sketch)):  # candidates are few: their shingles are rebuilt, not kept
            theirs = frozenset(shingles(targets[j], shingle_words))
            similarity = len(mine & theirs) / len(mine | theirs)
            if similarity >= threshold and (best is None or similarity > best[1]):
                best = (j, similarity)
        if best is not None:
            found.append((i, best[0], best[1]))
    return found


def best_matches(queries: np.ndarray, targets: np.ndarray, threshold: float, method: str = "auto",
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query index, target index, cosine) arrays for each query whose most similar target has
    cosine >= threshold; unit-length vectors. Ties go to the earliest target. method: exact,
    partitioned, or auto (exact up to EXACT_PAIRS query x target pairs)."""
    if method not in ("auto", "exact", "partitioned"):
        raise ValueError(f"best_matches method: expected auto, exact or partitioned, got {method!r}")
    n, m = len(queries), len(targets)
    best_t = np.full(n, -1, dtype=np.int64)
    best_s = np.full(n, -np.inf, dtype=np.float32)
    if n and m:
        if method == "exact" or (method == "auto" and n * m <= EXACT_PAIRS):
            for start in range(0, n, BLOCK_ROWS):
                rows = np.arange(start, min(n, start + BLOCK_ROWS))
                for col in range(0, m, TILE_COLUMNS):
                    cols = np.arange(col, min(m, col + TILE_COLUMNS))
                    _update(best_t, best_s, rows, cols, queries[rows] @ targets[cols].T)
        else:
            _partitioned(queries, targets, best_t, best_s, seed)
    hit = np.nonzero(best_s >= threshold)[0]
    return hit, best_t[hit], best_s[hit]


def _update(best_t: np.ndarray, best_s: np.ndarray, rows: np.ndarray, cols: np.ndarray, sims: np.ndarray) -> None:
    """Keep, per query row, the best target seen so far; cols ascending, so argmax's first
    maximum and the index tie-break both prefer the earliest target."""
    arg = sims.argmax(axis=1)
    s, t = sims[np.arange(len(rows)), arg], cols[arg]
    better = (s > best_s[rows]) | ((s == best_s[rows]) & (t < best_t[rows]))
    best_s[rows[better]] = s[better]
    best_t[rows[better]] = t[better]


def _groups(labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices sorted by label (stable: ascending within a label) and each label's bounds."""
    order = np.argsort(labels, kind="stable")
    return order, np.searchsorted(labels[order], np.arange(k + 1))


def _partitioned(queries: np.ndarray, targets: np.ndarray, best_t: np.ndarray, best_s: np.ndarray,
                 seed: int) -> None:
    """Centroids trained on the targets; a query meets the targets whose home is among its
    PROBES nearest centroids, and the targets that probe its home (both ways, as
    partitions.partitioned_pairs finds pairs)."""
    k = partition_count(len(targets))
    cents = centroids(targets, k, seed)
    t_home, t_probed = nearest_centroids(targets, cents, PROBES)
    q_home, q_probed = nearest_centroids(queries, cents, PROBES)
    t_by_home, t_home_bounds = _groups(t_home, k)
    q_by_home, q_home_bounds = _groups(q_home, k)
    q_by_probe, q_probe_bounds = _groups(q_probed.ravel(), k)
    t_by_probe, t_probe_bounds = _groups(t_probed.ravel(), k)
    q_by_probe //= q_probed.shape[1]
    t_by_probe //= t_probed.shape[1]
    # One BLAS thread for the ~k small matmuls (~10 x 1,000 each): measured with the machine at
    # load ~22 on 2 cores, 700 of them took 26.5 s with OpenBLAS's threads waiting on each
    # other and 0.98 s on one thread.
    with threadpool_limits(limits=1, user_api="blas"):
        _compare(queries, targets, best_t, best_s, k, (q_by_probe, q_probe_bounds, t_by_home, t_home_bounds),
                 (q_by_home, q_home_bounds, t_by_probe, t_probe_bounds))


def _compare(queries, targets, best_t, best_s, k: int, *ways) -> None:
    """Per centroid, each way's queries against its targets (rows by query group, cols by target group)."""
    for c in range(k):
        for q_order, q_bounds, t_order, t_bounds in ways:
            rows, cols = q_order[q_bounds[c]:q_bounds[c + 1]], t_order[t_bounds[c]:t_bounds[c + 1]]
            if len(rows) and len(cols):
                _update(best_t, best_s, rows, cols, queries[rows] @ targets[cols].T)
