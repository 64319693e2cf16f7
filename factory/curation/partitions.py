"""Near-linear cosine neighbours: k-means partitions, exact cosine within each, multi-probe.

Each vector belongs to the partition of its nearest centroid (its *home*) and is compared,
exactly, against the home members of its `probes` nearest centroids. A pair (i, j) is found
when j's home is among i's probes or i's home among j's; a near-duplicate pair (cosine
>= 0.95) is so close that missing both ways is rare (recall measured in bench/semantic_dedup.py).

Cost: training k-means on a sample, n x k for assignment, and about n x probes x n/k for the
comparisons; k = sqrt(probes x n) balances the two (1M vectors, 5 probes: k ~ 2,240 of
~450 members each). Centroids come from a few Lloyd steps of spherical k-means on a seeded
sample of SAMPLE_PER_CENTROID x k vectors (faiss trains on 39-256 per centroid), in numpy:
scikit-learn's MiniBatchKMeans took 28.6 s for 3,000 x 384, k = 122, with neighbours on the
2 cores (its OpenMP threads wait on each other; 1.3 s pinned to one thread) against 0.15 s
for these numpy steps. Assignment and comparisons are blocked float32 numpy matmuls.
"""
from __future__ import annotations

import numpy as np

PROBES = 5               # nearest centroids per vector: recall at 100k 0.985 (3), 0.992 (4), 0.995-0.999 (5)
SAMPLE_PER_CENTROID = 32  # k-means training sample per centroid (faiss uses 39-256; fewer is cheaper)
KMEANS_ITERATIONS = 6    # Lloyd steps on the sample
ASSIGN_ROWS = 8192       # rows per assignment block: 8192 x k float32 (~73 MB at k = 2,240)


def partition_count(n: int, probes: int = PROBES) -> int:
    """sqrt(probes x n), and no more than n / 8 so a partition averages 8+ members at small n."""
    return max(1, min(n // 8, int(round(np.sqrt(probes * n)))))


def centroids(vectors: np.ndarray, k: int, seed: int = 0, iterations: int = KMEANS_ITERATIONS) -> np.ndarray:
    """k unit-length centroids: spherical k-means (Lloyd) on a seeded sample, started from k
    distinct sample rows; an emptied centroid keeps its last position."""
    n = len(vectors)
    rng = np.random.default_rng(seed)
    sample = vectors[np.sort(rng.choice(n, min(n, SAMPLE_PER_CENTROID * k), replace=False))]
    cents = sample[np.sort(rng.choice(len(sample), k, replace=False))].copy()
    for _ in range(iterations):
        labels, _ = nearest_centroids(sample, cents, 1)
        order = np.argsort(labels, kind="stable")
        counts = np.bincount(labels, minlength=k)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        filled = counts > 0
        sums = np.add.reduceat(sample[order], starts[filled], axis=0)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        cents[filled] = sums / np.where(norms > 0, norms, 1.0)
    return cents


def nearest_centroids(vectors: np.ndarray, cents: np.ndarray, probes: int) -> tuple[np.ndarray, np.ndarray]:
    """(home, probed): each row's nearest centroid, and its `probes` nearest (home included)."""
    n, k = len(vectors), len(cents)
    probes = min(probes, k)
    home = np.empty(n, dtype=np.int64)
    probed = np.empty((n, probes), dtype=np.int64)
    for start in range(0, n, ASSIGN_ROWS):
        sims = vectors[start:start + ASSIGN_ROWS] @ cents.T
        home[start:start + len(sims)] = sims.argmax(axis=1)
        if probes == k:
            probed[start:start + len(sims)] = np.arange(k)
        else:
            probed[start:start + len(sims)] = np.argpartition(-sims, probes - 1, axis=1)[:, :probes]
    return home, probed


def partitioned_pairs(vectors: np.ndarray, threshold: float, probes: int = PROBES, k: int | None = None,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, cosine) arrays, i < j, sorted by (i, j), for the pairs over `threshold` found
    through the partitions; vectors unit length. Deterministic for a seed."""
    n = len(vectors)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    if n < 2:
        return empty
    k = k or partition_count(n, probes)
    home, probed = nearest_centroids(vectors, centroids(vectors, k, seed), probes)
    # Members grouped by home and queries grouped by probed centroid; stable sorts keep the
    # order fixed for a seed. Each partition's members are gathered when it is compared: a
    # sorted copy of all vectors was another 1.5 GB at 1M x 384 (bench/curation_rss.py).
    by_home = np.argsort(home, kind="stable")
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
        sims = vectors[q] @ vectors[by_home[lo:hi]].T
        r, col = np.nonzero(sims >= threshold)
        if len(r):
            a, b = q[r], by_home[lo + col]
            keep = a != b
            found_i.append(np.minimum(a, b)[keep])
            found_j.append(np.maximum(a, b)[keep])
            found_s.append(sims[r, col][keep])
    if not found_i:
        return empty
    i, j, s = np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_s)
    # A pair seen from both sides (or within one partition from both members) counts once.
    _, first = np.unique(i * n + j, return_index=True)
    return i[first], j[first], s[first]
