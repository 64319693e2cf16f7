"""Near-dup docs/s: factory's near_duplicate_pairs against rensa alone (the floor) and
datasketch (the peer), same corpus, same run; recall and precision of each against exact
3-word-shingle Jaccard over ALL pairs (inverted index, see tests/curation/test_near_dedup_recall.py).

  .venv/bin/pip install -e '.[bench]'   # datasketch: bench only (dev has it too)
  .venv/bin/python bench/near_dedup.py --docs 10000

(tests/bench/test_bench_smoke.py runs it with --docs 120 --repeats 1.)

Every method gets the same token lists from factory's `shingles` and is timed from text to
pairs (shingling included), best of --repeats. 128 permutations and threshold 0.8 for all.
  factory:    rensa MinHash + LSH with bands_for(128, 0.8) = 32 bands x 4 rows, every candidate
              checked on its exact shingle Jaccard (so precision is 1.0 by construction).
  rensa:      the same sketches and bands, candidates kept on their MinHash estimate >= 0.8:
              what factory costs without its exact check.
  datasketch: MinHash.bulk + MinHashLSH at its defaults (it picks its own bands), candidates
              kept on the MinHash estimate: the peer as a user would call it.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "curation"))

from rensa import RMinHash, RMinHashLSH  # noqa: E402
from test_near_dedup_recall import exact_jaccards, make_corpus  # noqa: E402

from factory.curation.near_dedup import SEED, bands_for, near_duplicate_pairs, shingles  # noqa: E402

THRESHOLD, NUM_PERM, SHINGLE_WORDS = 0.8, 128, 3


def run_factory(ids, texts):
    return {tuple(sorted((a, b))) for a, b, _ in near_duplicate_pairs(ids, texts, THRESHOLD, SHINGLE_WORDS, NUM_PERM)}


def run_rensa(ids, texts):
    sets = [shingles(t, SHINGLE_WORDS) for t in texts]
    sketches = RMinHash.from_token_sets(sets, num_perm=NUM_PERM, seed=SEED)
    lsh = RMinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM, num_bands=bands_for(NUM_PERM, THRESHOLD))
    for i, sketch in enumerate(sketches):
        lsh.insert(i, sketch)
    pairs = set()
    for i, sketch in enumerate(sketches):
        for j in lsh.query(sketch):
            if j > i and sketch.jaccard(sketches[j]) >= THRESHOLD:
                pairs.add((ids[i], ids[j]))
    return pairs


def run_datasketch(ids, texts):
    from datasketch import MinHash, MinHashLSH

    sets = [[s.encode() for s in shingles(t, SHINGLE_WORDS)] for t in texts]
    sketches = MinHash.bulk(sets, num_perm=NUM_PERM)
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    with lsh.insertion_session() as session:
        for i, sketch in enumerate(sketches):
            session.insert(i, sketch)
    pairs = set()
    for i, sketch in enumerate(sketches):
        for j in lsh.query(sketch):
            if j > i and sketch.jaccard(sketches[j]) >= THRESHOLD:
                pairs.add((ids[i], ids[j]))
    return pairs, lsh.b, lsh.r


def best_of(repeats, fn, *args):
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=10_000, help="documents in all, 1/6 of them planted near-copies")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    try:  # first, not after the truth and two timed methods
        import datasketch  # noqa: F401
    except ImportError:
        raise SystemExit("near_dedup.py: datasketch (the peer it compares against) is missing: "
                         "pip install -e '.[bench]'") from None

    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores; anything over ~0.3 means a neighbour shares them)")
    planted = args.docs // 6  # the test's 300 planted per 1,500 base documents
    ids, texts, _ = make_corpus(n_docs=args.docs - planted, n_planted=planted)
    start = time.perf_counter()
    jaccards = exact_jaccards(texts)
    truth = {tuple(sorted((ids[i], ids[j]))) for (i, j), jac in jaccards.items() if jac >= THRESHOLD}
    exact = {tuple(sorted((ids[i], ids[j]))): jac for (i, j), jac in jaccards.items()}
    print(f"{len(ids)} docs ({planted} planted), {len(truth)} true pairs at exact J >= {THRESHOLD} "
          f"(exact truth over all pairs in {time.perf_counter() - start:.1f} s)")
    t_shingle, _ = best_of(args.repeats, lambda: [shingles(t, SHINGLE_WORDS) for t in texts])

    t_factory, got_factory = best_of(args.repeats, run_factory, ids, texts)
    t_rensa, got_rensa = best_of(args.repeats, run_rensa, ids, texts)
    t_ds, (got_ds, b, r) = best_of(args.repeats, run_datasketch, ids, texts)

    print(f"{'method':<34}{'docs/s':>10}{'seconds':>9}{'pairs':>7}{'recall':>8}{'precision':>10}")
    for name, seconds, got in (("factory near_duplicate_pairs", t_factory, got_factory),
                               ("rensa alone (MinHash estimate)", t_rensa, got_rensa),
                               (f"datasketch bulk+LSH (b={b}, r={r})", t_ds, got_ds)):
        true = sum(1 for p in got if exact.get(p, 0.0) >= THRESHOLD)
        print(f"{name:<34}{len(ids) / seconds:>10,.0f}{seconds:>9.3f}{len(got):>7}"
              f"{len(got & truth) / len(truth):>8.4f}{(true / len(got) if got else 1.0):>10.4f}")
    print(f"shingling alone (in every method): {t_shingle:.3f} s")
    print(f"ratio factory/rensa docs/s:      {t_rensa / t_factory:.2f}")
    print(f"ratio factory/datasketch docs/s: {t_ds / t_factory:.2f}")


if __name__ == "__main__":
    main()
