"""Semantic-dedup wall time: factory's similar_pairs (blocked numpy cosine) on 100k x 384
unit vectors, and on a 5k subset the same call against DuckDB SQL brute force and a plain
numpy `v @ v.T` (the floor), in the same run; prints times and ratios. At 100k the floor
is the same blocked upper-triangle matmul with no threshold work (v @ v.T whole is 40 GB).

  .venv/bin/python bench/semantic_dedup.py --rows 100000 --subset 5000

Vectors: seeded Gaussian, normalized (unrelated pairs have cosine ~N(0, 1/384), max ~0.35
over 5e9 pairs), plus 1% planted near-copies: a source row plus noise of per-dimension
sigma 0.005-0.015, renormalized, cosine ~0.96-0.995, so every planted pair is over 0.95.
The 5k subset holds the first 50 planted pairs, both members, so DuckDB has pairs to find.
"""
from __future__ import annotations

import argparse
import os
import time

import duckdb
import numpy as np
import pandas as pd

from factory.curation.semantic_dedup import BLOCK_ROWS, similar_pairs

THRESHOLD, DIM = 0.95, 384


def planted_vectors(rows: int, seed: int = 5):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((rows, DIM), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    n_planted = rows // 100
    chosen = rng.permutation(rows)[:2 * n_planted]
    sources, targets = chosen[:n_planted], chosen[n_planted:]
    sigma = rng.uniform(0.005, 0.015, size=(n_planted, 1)).astype(np.float32)
    copies = v[sources] + sigma * rng.standard_normal((n_planted, DIM), dtype=np.float32)
    v[targets] = copies / np.linalg.norm(copies, axis=1, keepdims=True)
    return v, list(zip(sources.tolist(), targets.tolist()))


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def blocked_matmul_only(vectors: np.ndarray, block: int = BLOCK_ROWS) -> None:
    """similar_pairs' matmuls and nothing else: what the threshold and pair-collecting add."""
    for start in range(0, len(vectors), block):
        vectors[start:start + block] @ vectors[start:].T


def duckdb_pairs(vectors: np.ndarray) -> list[tuple]:
    con = duckdb.connect()
    con.register("df", pd.DataFrame({"id": np.arange(len(vectors)), "vec": list(vectors)}))
    con.execute(f"CREATE TABLE v AS SELECT id::INTEGER AS id, vec::FLOAT[{DIM}] AS vec FROM df")
    start = time.perf_counter()  # the load is not timed: only the self-join
    rows = con.execute(f"""SELECT a.id, b.id, array_cosine_similarity(a.vec, b.vec) AS s
                           FROM v a JOIN v b ON a.id < b.id
                           WHERE array_cosine_similarity(a.vec, b.vec) >= {THRESHOLD}""").fetchall()
    return time.perf_counter() - start, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--subset", type=int, default=5_000)
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores; anything over ~0.3 means a neighbour shares them)")
    vectors, planted = planted_vectors(args.rows)
    ids = [f"s{i}" for i in range(args.rows)]
    seconds, pairs = timed(similar_pairs, ids, vectors, THRESHOLD)
    found = {(a, b) for a, b, _ in pairs}
    hit = sum(1 for s, t in planted if (ids[min(s, t)], ids[max(s, t)]) in found)
    gflops = args.rows * args.rows * DIM / seconds / 1e9  # upper triangle: n^2/2 multiply-adds x 2 flops
    print(f"similar_pairs {args.rows:,} x {DIM}: {seconds:.2f} s ({gflops:.0f} GFLOP/s), {len(pairs)} pairs, "
          f"{hit}/{len(planted)} planted found")
    t_blocks, _ = timed(blocked_matmul_only, vectors)
    print(f"floor, the same blocked matmuls alone: {t_blocks:.2f} s; similar_pairs / floor: {seconds / t_blocks:.2f}")

    keep = sorted({i for pair in planted[:50] for i in pair})
    rest = np.setdiff1d(np.arange(args.rows), keep)[: args.subset - len(keep)]
    sub = vectors[np.concatenate([keep, rest])]
    sub_ids = ids[: len(sub)]
    # best of 3 for both numpy sides: one call is ~0.1-0.3 s, noisy with a neighbour on the cores
    t_factory, p_factory = min(timed(similar_pairs, sub_ids, sub, THRESHOLD) for _ in range(3))
    t_floor = min(timed(lambda: sub @ sub.T)[0] for _ in range(3))
    t_duck, p_duck = duckdb_pairs(sub)
    print(f"{len(sub):,} subset: similar_pairs {t_factory:.3f} s ({len(p_factory)} pairs); "
          f"numpy v @ v.T (all n^2: twice similar_pairs' work) {t_floor:.3f} s; "
          f"DuckDB array_cosine_similarity self-join {t_duck:.2f} s ({len(p_duck)} pairs)")
    print(f"ratio DuckDB / similar_pairs: {t_duck / t_factory:.1f}x; "
          f"similar_pairs / numpy floor: {t_factory / t_floor:.2f}")


if __name__ == "__main__":
    main()
