"""Batched decoding on one llamacpp engine (execution.slots_per_engine): generation tok/s
with slots 1 (today's path: one create_chat_completion at a time) against slots 4 and 16
(llama.cpp's batch API, continuous batching), the same demo generator requests on one
engine in one run; prints ratios. Also: does a request decoded alone (slots 16, nothing
beside it) give the same text as in the batch, with the same seed?

  RAY_AUTH_MODE=disabled .venv/bin/python bench/batched_generation.py --requests 16 --threads 2 --repeats 1
  RAY_AUTH_MODE=disabled .venv/bin/python bench/batched_generation.py --requests 16 --threads 2 --max-tokens 64

(tests/bench/test_bench_smoke.py runs it with --requests 2 --max-tokens 8 --slots 1,2 --repeats 1.)
Model load is outside every timed window (one warm-up request each way).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from generation_throughput import MODEL, requests_for  # noqa: E402

from factory.backends.llamacpp import LlamaCppBackend  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=None, help="default: the demo generator's (256)")
    ap.add_argument("--slots", default="1,4,16", help="comma-separated; 1 is the single-request path")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    ap.add_argument("--job", default="jobs/tinystories-demo.yaml")
    args = ap.parse_args()
    slot_counts = [int(s) for s in args.slots.split(",")]
    if not slot_counts or min(slot_counts) < 1:
        sys.exit(f"--slots: expected comma-separated integers >= 1, got {args.slots!r}")

    requests = requests_for(args.job, args.requests, offset=0, max_tokens=args.max_tokens)
    warm = requests_for(args.job, 1, offset=10_000, max_tokens=8)
    backend = LlamaCppBackend(MODEL, threads=args.threads)
    for slots in slot_counts:
        backend.generate_batched(warm, slots)  # builds the batched context outside the clock
    # Rounds interleave the contenders, so a load change on the shared box hits each one;
    # the ratio is taken within a round and the median round is reported.
    results, ratios = {}, {s: [] for s in slot_counts[1:]}
    for round_ in range(args.repeats):
        rates = {}
        for slots in slot_counts:
            start = time.perf_counter()
            out = backend.generate_batched(requests, slots)
            seconds = time.perf_counter() - start
            tokens = sum(c.completion_tokens for c in out)
            results[slots], rates[slots] = (tokens, seconds, out), tokens / seconds
            print(f"round {round_ + 1} slots {slots:>3}: {tokens:,} tokens in {seconds:.1f} s = {rates[slots]:.1f} tok/s")
        for slots in slot_counts[1:]:
            ratios[slots].append(rates[slots] / rates[slot_counts[0]])
    for slots in slot_counts[1:]:
        each = ", ".join(f"{r:.2f}" for r in ratios[slots])
        print(f"ratio slots {slots} / slots {slot_counts[0]} tok/s: {statistics.median(ratios[slots]):.2f} "
              f"(median of rounds: {each})")

    # The same request alone vs in a batch (the batched path both times, same seed).
    batched = max(slot_counts)
    if batched > 1:
        together = results[batched][2]
        alone = [backend.generate_batched([r], batched)[0] for r in requests[:4]]
        same = sum(a.text == b.text for a, b in zip(alone, together))
        print(f"alone vs in a batch of {min(batched, len(requests))}: {same}/{len(alone)} texts identical")
        if 1 in results:
            same_single = sum(a.text == b.text for a, b in zip(results[1][2], together))
            print(f"single path vs batched: {same_single}/{len(together)} texts identical")


if __name__ == "__main__":
    main()
