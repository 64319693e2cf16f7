"""Semantic-dedup wall time and recall: factory's exact all-pairs method (blocked numpy
cosine) against its partitioned one (k-means + multi-probe, factory/curation/partitions.py)
on 100k x 384 unit vectors in the same run (recall of the partitioned pairs against the
exact ones, and the ratio of times); on a 5k subset the exact call against DuckDB SQL brute
force and a plain numpy `v @ v.T` (the floor). At 100k the floor is the same blocked
upper-triangle matmul with no threshold work (v @ v.T whole is 40 GB). --crossover times
both methods at a few sizes (where "auto" should switch); --big runs the partitioned method
alone on a larger set (exact is out of reach there) and reports its planted-pair recall.

  .venv/bin/python bench/semantic_dedup.py --rows 100000 --subset 5000 \
      --crossover 5000,10000,20000,40000 --big 1000000

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

from factory.curation.partitions import PROBES, partition_count
from factory.curation.semantic_dedup import BLOCK_ROWS, exact_pairs, similar_pairs

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


def partitioned(ids, vectors):
    return similar_pairs(ids, vectors, THRESHOLD, method="partitioned")


def planted_found(pairs, planted, ids) -> int:
    found = {(a, b) for a, b, _ in pairs}
    return sum(1 for s, t in planted if (ids[min(s, t)], ids[max(s, t)]) in found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--subset", type=int, default=5_000)
    parser.add_argument("--crossover", default="", help="comma-separated sizes timed with both methods")
    parser.add_argument("--big", type=int, default=0, help="rows for a partitioned-only run (0: none)")
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores; anything over ~0.3 means a neighbour shares them)")
    vectors, planted = planted_vectors(args.rows)
    ids = [f"s{i}" for i in range(args.rows)]
    seconds, pairs = timed(exact_pairs, ids, vectors, THRESHOLD)
    gflops = args.rows * args.rows * DIM / seconds / 1e9  # upper triangle: n^2/2 multiply-adds x 2 flops
    print(f"exact {args.rows:,} x {DIM}: {seconds:.2f} s ({gflops:.0f} GFLOP/s), {len(pairs)} pairs, "
          f"{planted_found(pairs, planted, ids)}/{len(planted)} planted found")
    t_part, p_part = timed(partitioned, ids, vectors)
    exact_set = {(a, b) for a, b, _ in pairs}
    part_set = {(a, b) for a, b, _ in p_part}
    recall = len(exact_set & part_set) / max(1, len(exact_set))
    extra = sum(1 for _, _, sim in p_part if sim < THRESHOLD) + len(part_set - exact_set)
    print(f"partitioned {args.rows:,} x {DIM} (k={partition_count(args.rows)}, probes={PROBES}): {t_part:.2f} s, "
          f"{len(p_part)} pairs, recall vs exact {recall:.4f}, pairs not in exact {extra}")
    print(f"ratio exact / partitioned at {args.rows:,}: {seconds / t_part:.2f}x")
    t_blocks, _ = timed(blocked_matmul_only, vectors)
    print(f"floor, the same blocked matmuls alone: {t_blocks:.2f} s; exact / floor: {seconds / t_blocks:.2f}")

    keep = sorted({i for pair in planted[:50] for i in pair})
    rest = np.setdiff1d(np.arange(args.rows), keep)[: args.subset - len(keep)]
    sub = vectors[np.concatenate([keep, rest])]
    sub_ids = ids[: len(sub)]
    # best of 3 for both numpy sides: one call is ~0.1-0.3 s, noisy with a neighbour on the cores
    t_factory, p_factory = min(timed(exact_pairs, sub_ids, sub, THRESHOLD) for _ in range(3))
    t_floor = min(timed(lambda: sub @ sub.T)[0] for _ in range(3))
    t_duck, p_duck = duckdb_pairs(sub)
    print(f"{len(sub):,} subset: exact {t_factory:.3f} s ({len(p_factory)} pairs); "
          f"numpy v @ v.T (all n^2: twice the exact method's work) {t_floor:.3f} s; "
          f"DuckDB array_cosine_similarity self-join {t_duck:.2f} s ({len(p_duck)} pairs)")
    print(f"ratio DuckDB / exact: {t_duck / t_factory:.1f}x; exact / numpy floor: {t_factory / t_floor:.2f}")

    for size in [int(x) for x in args.crossover.split(",") if x]:
        cut, cut_planted = planted_vectors(size)
        cut_ids = [f"s{i}" for i in range(size)]
        t_e, p_e = min(timed(exact_pairs, cut_ids, cut, THRESHOLD) for _ in range(2))
        t_p, p_p = min(timed(partitioned, cut_ids, cut) for _ in range(2))
        print(f"crossover {size:,}: exact {t_e:.2f} s, partitioned {t_p:.2f} s "
              f"(recall {planted_found(p_p, cut_planted, cut_ids)}/{len(cut_planted)} planted), "
              f"exact / partitioned {t_e / t_p:.2f}")

    if args.big:
        del vectors, ids, pairs
        big, big_planted = planted_vectors(args.big)
        big_ids = [f"s{i}" for i in range(args.big)]
        print(f"load average before --big: {os.getloadavg()[0]:.2f}")
        t_big, p_big = timed(partitioned, big_ids, big)
        hit = planted_found(p_big, big_planted, big_ids)
        # Unrelated Gaussian pairs stay far below 0.95 (max ~0.35), so the planted pairs are
        # the exact result here: their recall is the recall against all-pairs.
        print(f"partitioned {args.big:,} x {DIM} (k={partition_count(args.big)}, probes={PROBES}): {t_big:.2f} s, "
              f"{len(p_big)} pairs, {hit}/{len(big_planted)} planted found (recall {hit / max(1, len(big_planted)):.4f})")


if __name__ == "__main__":
    main()
