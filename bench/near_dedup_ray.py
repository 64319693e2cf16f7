"""Near dedup through Ray Data on local workers (factory/curation/on_ray.py, what
`factory curate --address` runs) against the single-process pass, same corpus, same run.

  .venv/bin/python bench/near_dedup_ray.py --docs 200000 --workers 2

(tests/bench/test_bench_smoke.py runs it with --docs 600 --workers 2 --repeats 1.)

Both paths take texts to verified pairs (threshold 0.8, 128 permutations, 3-word shingles)
and must return the same list (asserted: same pairs, same order, same Jaccards). The Ray
path: MinHash sketches on the workers (map_batches), pickled sketches back to the driver,
LSH candidates on the driver, candidate pairs' exact Jaccard on the workers. Ray starts
before the timing (`ray.init(num_cpus=workers)`, one local node), and a warm-up pass on
1,000 docs starts the worker processes; each timed pass still builds its datasets.
The corpus is tests/curation/test_near_dedup_recall.py's (1/6 planted near-copies).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "curation"))

from test_near_dedup_recall import make_corpus  # noqa: E402

from near_dedup import best_of  # noqa: E402  (bench/ is the script's folder: sys.path[0])

from factory.curation import near_dedup, on_ray  # noqa: E402

THRESHOLD, NUM_PERM, SHINGLE_WORDS = 0.8, 128, 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=200_000, help="documents in all, 1/6 of them planted near-copies")
    parser.add_argument("--workers", type=int, default=2, help="CPUs of the local Ray node (one worker each)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    import ray

    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    planted = args.docs // 6
    ids, texts, _ = make_corpus(n_docs=args.docs - planted, n_planted=planted)
    print(f"{len(ids)} docs ({planted} planted)")

    start = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    compute = on_ray.compute_for("local")  # already connected: uses this Ray
    compute.near_duplicate_pairs(ids[:1000], texts[:1000], THRESHOLD, SHINGLE_WORDS, NUM_PERM)  # warm-up
    print(f"ray start + warm-up on 1,000 docs: {time.perf_counter() - start:.1f} s (not timed below)")

    t_local, want = best_of(args.repeats, near_dedup.near_duplicate_pairs, ids, texts, THRESHOLD, SHINGLE_WORDS,
                            NUM_PERM)
    t_ray, got = best_of(args.repeats, compute.near_duplicate_pairs, ids, texts, THRESHOLD, SHINGLE_WORDS, NUM_PERM)
    assert got == want, f"Ray path differs: {len(got)} pairs vs {len(want)}"
    # What stays on the driver in the Ray path: the LSH index over the returned sketches.
    sketches = near_dedup.sketches_of([near_dedup.shingles(t, SHINGLE_WORDS) for t in texts], NUM_PERM)
    start = time.perf_counter()
    candidates = near_dedup.candidate_pairs(sketches, THRESHOLD, NUM_PERM)
    t_lsh = time.perf_counter() - start
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    ray.shutdown()

    print(f"{'method':<40}{'docs/s':>10}{'seconds':>9}{'pairs':>8}")
    print(f"{'single process (near_duplicate_pairs)':<40}{len(ids) / t_local:>10,.0f}{t_local:>9.2f}{len(want):>8}")
    print(f"{f'Ray Data, {args.workers} local workers':<40}{len(ids) / t_ray:>10,.0f}{t_ray:>9.2f}{len(got):>8}")
    print(f"same pairs: {got == want} ({len(candidates)} LSH candidates; driver LSH alone {t_lsh:.2f} s)")
    print(f"ratio ray/single-process docs/s: {t_local / t_ray:.2f}")


if __name__ == "__main__":
    main()
