"""Shared prompt prefixes on the batched llamacpp path (execution.slots_per_engine > 1):
reviewer prefill tokens actually computed per story, and the wall time of the reviews,
with sharing (same-prompt requests kept in one call, executors/grouping.py; the prompt
prefilled once and its KV cache copied, backends/llamacpp_batch.py) against today's
layout (calls of `slots` requests, every prompt prefilled in full), in one run; prints
ratios and whether the texts are identical.

  RAY_AUTH_MODE=disabled .venv/bin/python bench/prefix_sharing.py --stories 6 --slots 16 --threads 2

(tests/bench/test_bench_smoke.py runs it with --stories 1 --story-tokens 16 --max-tokens 4
--slots 2 --threads 1 --repeats 1.)

The reviewer requests are the demo's (jobs/tinystories-demo.yaml: its reviewer template,
3 reviewers, their request seeds, max_tokens 120) on demo stories that the demo generator
writes first (seeds 0..stories-1, untimed). Each contender gets the stories' reviews in the
order Review asks for them, cut into calls as its executor cuts them, on one engine; the
batched context is built outside the clock; rounds alternate the contenders.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import deque

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from generation_throughput import MODEL, requests_for  # noqa: E402

from factory.backends.llamacpp import LlamaCppBackend  # noqa: E402
from factory.executors.grouping import call_size  # noqa: E402
from factory.keys import request_seed  # noqa: E402
from factory.pipeline import bind_roles, make_recipe  # noqa: E402
from factory.spec import load_job  # noqa: E402


def review_requests(job: str, stories: list[str], max_tokens: int | None):
    """The reviewer requests Review sends for these stories: story by story, reviewer 0..k-1."""
    import dataclasses

    spec = load_job(job)
    recipe = make_recipe(spec)
    reviewer = bind_roles(spec, recipe)["reviewer"]
    out = []
    for i, story in enumerate(stories):
        variables = recipe.review_variables(recipe.make_seed(i), {"text": story})
        for k in range(spec.reviewers):
            r = reviewer.request(variables, request_seed(spec.seed, i, "reviewer", k), i, k)
            if max_tokens is not None:
                r = dataclasses.replace(r, sampling={**r.sampling, "max_tokens": max_tokens})
            out.append(r)
    return spec.reviewers, out


def calls(requests: list, slots: int, grouped: bool) -> list[list]:
    """The calls an executor sends: `slots` at a time (today), or grouping.call_size's."""
    pending, out = deque(requests), []
    while pending:
        size = call_size(pending, slots) if grouped else slots
        out.append([pending.popleft() for _ in range(min(size, len(pending)))])
    return out


def run(backend, requests, slots: int, shared: bool):
    backend.prefill_stats.update(prompt_tokens=0, computed=0)
    started = time.perf_counter()
    out = [c for call in calls(requests, slots, grouped=shared)
           for c in backend.generate_batched(call, slots, share_prefixes=shared)]
    return out, time.perf_counter() - started, dict(backend.prefill_stats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stories", type=int, default=6, help="demo stories to review (the demo's batch_size: 6)")
    ap.add_argument("--slots", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--story-tokens", type=int, default=None, help="generator max_tokens; default the demo's (256)")
    ap.add_argument("--max-tokens", type=int, default=None, help="reviewer max_tokens; default the demo's (120)")
    ap.add_argument("--repeats", type=int, default=2, help="rounds, each running both contenders")
    ap.add_argument("--job", default="jobs/tinystories-demo.yaml")
    args = ap.parse_args()
    if args.stories < 1 or args.slots < 2 or args.threads < 1 or args.repeats < 1:
        sys.exit("--stories, --threads and --repeats must be >= 1 and --slots >= 2 (1 is the unbatched path)")

    backend = LlamaCppBackend(MODEL, threads=args.threads)
    written = backend.generate_batched(requests_for(args.job, args.stories, offset=0, max_tokens=args.story_tokens),
                                       args.slots)
    reviewers, requests = review_requests(args.job, [c.text for c in written], args.max_tokens)
    # the stories were written on the same batched context: nothing is built inside the clock
    print(f"{args.stories} stories x {reviewers} reviewers = {len(requests)} reviews, slots {args.slots}, "
          f"{args.threads} threads, reviewer max_tokens {requests[0].sampling['max_tokens']}")

    # Rounds alternate which contender goes first, so a load change on the shared box hits both.
    rounds, texts = [], {}
    for round_ in range(args.repeats):
        order = (False, True) if round_ % 2 == 0 else (True, False)
        result = {}
        for shared in order:
            out, seconds, stats = run(backend, requests, args.slots, shared)
            result[shared] = (seconds, stats)
            texts[shared] = [c.text for c in out]
            name = "shared" if shared else "today "
            print(f"round {round_ + 1} {name}: {seconds:.1f} s, prompt tokens {stats['prompt_tokens']:,}, "
                  f"prefilled {stats['computed']:,} ({stats['computed'] / args.stories:,.0f} per story)")
        rounds.append(result)

    today = rounds[0][False][1]["computed"] / args.stories
    shared = rounds[0][True][1]["computed"] / args.stories
    wall = [r[True][0] / r[False][0] for r in rounds]
    same = sum(a == b for a, b in zip(texts[False], texts[True]))
    prompt = rounds[0][False][1]["prompt_tokens"] / len(requests)
    print(f"reviewer prompt tokens per review (mean): {prompt:,.0f}")
    print(f"reviewer prefill tokens computed per story: today {today:,.0f}, shared {shared:,.0f}")
    print(f"ratio shared / today prefill tokens: {shared / today:.3f}")
    print(f"ratio shared / today wall time: {statistics.median(wall):.3f} "
          f"(median of rounds: {', '.join(f'{w:.3f}' for w in wall)})")
    print(f"texts identical, shared vs today: {same}/{len(requests)}")
    print(json.dumps({"stories": args.stories, "reviewers": reviewers, "slots": args.slots, "threads": args.threads,
                      "prefill_per_story": {"today": today, "shared": shared}, "prefill_ratio": shared / today,
                      "wall_ratio": statistics.median(wall), "identical": same, "reviews": len(requests),
                      "seconds": {"today": [r[False][0] for r in rounds], "shared": [r[True][0] for r in rounds]}}))


if __name__ == "__main__":
    main()
