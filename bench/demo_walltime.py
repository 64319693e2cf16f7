"""The demo through `factory run` with today's default execution (A) and a tuned one (B):
wall time of each and the ratio B / A, generation tokens/s of each, and the same generator
prompts' tokens/s through raw llama-cpp-python single stream, in one run; prints ratios.

  RAY_AUTH_MODE=disabled .venv/bin/python bench/demo_walltime.py --limit 12 --repeats 1

(tests/bench/test_bench_smoke.py runs it with --limit 1 --max-tokens 48 --repeats 1 --raw-threads 1.)

A: jobs/tinystories-demo.yaml with the execution it had before issue 13 (executor ray, engines
auto, 1 thread each, batch 6, slots 1, 1 batch in flight: BEFORE). B: a copy with `execution:`
changed to TUNED (--tuned; the demo file now ships it). Only `execution:` differs; it is not
fingerprinted, so A and B are the same job, and the bench
checks that both runs' samples carry the same request keys and seeds. Each run is a separate
`factory run --limit N` subprocess on a fresh DuckDB in a temp dir (nothing cached), timed
from spawn to exit: Ray start, model loads, likelihood scoring and writes are all in it, as
a user sees the demo. Rounds run A then B, so a load change on the shared box hits both.

tokens/s = every completion token of the run (generator, reviewers, adjudicator; from
`factory stats --json`) / its wall time. Raw single stream: one llama_cpp.Llama with
--raw-threads threads (default: all cores, what a user would write), create_chat_completion
one request at a time on the run's generator requests (re-rendered; their request keys are
checked against A's samples), same sampling and seeds, model load and a warm-up untimed.
Batched texts may differ from the single path's (README), so counts are compared, not texts.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import yaml

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from generation_throughput import MODEL, raw_call, requests_for  # noqa: E402

from factory.backends.llamacpp import CONTEXT_TOKENS, model_path  # noqa: E402

FACTORY = Path(sys.executable).with_name("factory")
# A's layout (two 1-thread engines) with batched decoding (8 slots), batches of 12 and 3
# batches in flight, whose requests share each engine's slots (backends/llamacpp_queue.py).
# Chosen on the full demo on a quiet box (30 seeds, one run each, docs/benchmarks.md): A 145 s;
# slots 1 + 3 in flight 134 s; slots 4 + 3 in flight 128 s; this 113 s; one local 2-thread
# engine x 16 slots, batches of 16, 2 in flight 108 s (not Ray: the demo shows Ray workers).
# At 1 thread llama.cpp decodes 16 sequences no faster than 1 (92 vs 89 tok/s): the gain is
# shared reviewer prefills and engines kept busy, not batched decoding.
BEFORE = {"executor": "ray", "engines": "auto", "threads_per_engine": 1, "batch_size": 6}  # the demo's until issue 13
TUNED = {"executor": "ray", "engines": 2, "threads_per_engine": 1, "slots_per_engine": 8, "batch_size": 12,
         "batches_in_flight": 3}


def write_jobs(job: str, folder: Path, tuned: dict, max_tokens: int | None) -> tuple[Path, Path]:
    """Copies of `job` (with --max-tokens applied to both): A with `execution:` BEFORE, B with it tuned."""
    data = yaml.safe_load(Path(job).read_text())
    if max_tokens is not None:  # smoke sizes only: every role's cap, the same in A and B
        for role in data.get("roles", {}).values():
            role.setdefault("sampling", {})["max_tokens"] = max_tokens
    a, b = folder / "a.yaml", folder / "b.yaml"
    a.write_text(yaml.safe_dump({**data, "execution": BEFORE}, sort_keys=False))
    b.write_text(yaml.safe_dump({**data, "execution": {**BEFORE, **tuned}}, sort_keys=False))
    return a, b


def factory_run(job: Path, db: Path, limit: int) -> dict:
    """One `factory run` on a fresh db, timed end to end, then what it wrote."""
    start = time.perf_counter()
    proc = subprocess.run([str(FACTORY), "run", str(job), "--limit", str(limit), "--db", str(db), "--quiet"],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"factory run {job.name} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    stats = subprocess.run([str(FACTORY), "stats", "--json", "--db", str(db)], capture_output=True, text=True, check=True)
    tokens = json.loads(stats.stdout)["tokens"]
    con = duckdb.connect(str(db), read_only=True)
    try:
        keys = con.execute("SELECT seed_index, request_key, request_seed FROM samples ORDER BY seed_index").fetchall()
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("samples", "reviews", "verdicts", "drops", "completions")}
        decisions = dict(con.execute("SELECT decision, count(*) FROM verdicts GROUP BY 1 ORDER BY 1").fetchall())
    finally:
        con.close()
    completion = sum(r["completion_tokens"] for r in tokens.values())
    return {"seconds": round(seconds, 1), "completion_tokens": completion, "tok_per_s": round(completion / seconds, 2),
            "tokens_by_role": {k: v["completion_tokens"] for k, v in tokens.items()}, "counts": counts,
            "decisions": decisions, "keys": keys}


def raw_single_stream(requests, threads: int) -> dict:
    from llama_cpp import Llama

    llm = Llama(model_path=str(model_path(MODEL)), n_ctx=CONTEXT_TOKENS, n_threads=threads, n_threads_batch=threads,
                verbose=False)
    raw_call(llm, dataclasses.replace(requests[0], sampling={**requests[0].sampling, "max_tokens": 8}))  # warm-up
    start = time.perf_counter()
    tokens = sum(raw_call(llm, r) for r in requests)
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 1), "completion_tokens": tokens, "tok_per_s": round(tokens / seconds, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--job", default="jobs/tinystories-demo.yaml")
    ap.add_argument("--limit", type=int, default=12, help="seeds per run (factory run --limit)")
    ap.add_argument("--repeats", type=int, default=1, help="rounds of A, B, raw")
    ap.add_argument("--tuned", default=json.dumps(TUNED), help="B's execution settings, JSON, merged over BEFORE")
    ap.add_argument("--max-tokens", type=int, default=None, help="cap every role's max_tokens in A and B (smoke)")
    ap.add_argument("--raw-threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    if args.limit < 1 or args.repeats < 1:
        sys.exit("--limit and --repeats: expected integers >= 1")
    try:
        tuned = json.loads(args.tuned)
        assert isinstance(tuned, dict)
    except (ValueError, AssertionError):
        sys.exit(f"--tuned: expected a JSON object of execution settings, got {args.tuned!r}")
    if not FACTORY.exists():
        sys.exit(f"{FACTORY}: the factory command is not installed next to this python")

    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        job_a, job_b = write_jobs(args.job, Path(tmp), tuned, args.max_tokens)
        print(f"A execution: {yaml.safe_load(job_a.read_text())['execution']}")
        print(f"B execution: {yaml.safe_load(job_b.read_text())['execution']}", flush=True)
        generator_requests = requests_for(str(job_a), args.limit, offset=0)
        for i in range(args.repeats):
            a = factory_run(job_a, Path(tmp) / f"a{i}.duckdb", args.limit)
            print(f"round {i + 1} A: {a['seconds']} s, {a['completion_tokens']:,} completion tokens, "
                  f"{a['tok_per_s']} tok/s, {a['counts']}, {a['decisions']}", flush=True)
            b = factory_run(job_b, Path(tmp) / f"b{i}.duckdb", args.limit)
            print(f"round {i + 1} B: {b['seconds']} s, {b['completion_tokens']:,} completion tokens, "
                  f"{b['tok_per_s']} tok/s, {b['counts']}, {b['decisions']}", flush=True)
            if a["keys"] != b["keys"]:
                sys.exit(f"A and B samples differ in request keys/seeds:\nA {a['keys']}\nB {b['keys']}")
            sample_keys = {key for _, key, _ in a["keys"]}
            if not sample_keys <= {r.key for r in generator_requests}:
                sys.exit("the re-rendered generator requests are not the ones factory run sent (request keys differ)")
            raw = raw_single_stream(generator_requests, args.raw_threads)
            print(f"round {i + 1} raw single stream ({args.raw_threads} threads, {len(generator_requests)} generator "
                  f"requests): {raw['seconds']} s, {raw['completion_tokens']:,} tokens, {raw['tok_per_s']} tok/s", flush=True)
            rounds.append({"A": {k: v for k, v in a.items() if k != "keys"},
                           "B": {k: v for k, v in b.items() if k != "keys"}, "raw": raw,
                           "same request keys/seeds": True, "samples": len(a["keys"])})

    for i, r in enumerate(rounds):
        a, b, raw = r["A"], r["B"], r["raw"]
        print(f"round {i + 1}: same request keys/seeds in A and B: True ({r['samples']} samples); "
              f"counts A {a['counts']} B {b['counts']} (batched texts may differ: counts, not texts)")
    ratios = {
        "wall B / A": [r["B"]["seconds"] / r["A"]["seconds"] for r in rounds],
        "tok/s B / A": [r["B"]["tok_per_s"] / r["A"]["tok_per_s"] for r in rounds],
        "tok/s B / raw single stream": [r["B"]["tok_per_s"] / r["raw"]["tok_per_s"] for r in rounds],
        "tok/s A / raw single stream": [r["A"]["tok_per_s"] / r["raw"]["tok_per_s"] for r in rounds],
    }
    for name, values in ratios.items():
        median = sorted(values)[len(values) // 2]
        print(f"ratio {name}: {median:.3f} (rounds: {', '.join(f'{v:.3f}' for v in values)})")
    print(json.dumps({"limit": args.limit, "tuned": tuned, "raw_threads": args.raw_threads, "rounds": rounds,
                      "ratios": {k: [round(v, 3) for v in vs] for k, vs in ratios.items()}}))


if __name__ == "__main__":
    main()
