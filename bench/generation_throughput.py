"""Generation tokens/s through factory against raw llama-cpp-python, same prompts, same
sampling params, in the same run; prints a ratio.

  RAY_AUTH_MODE=disabled .venv/bin/python bench/generation_throughput.py --samples 24

(tests/bench/test_bench_smoke.py runs it with --samples 1 --max-tokens 8 --cores 1.)

factory: the generator requests that `factory run` renders, through the same Caller and
Ray engine pool it uses (engines = cores, 1 thread each; cache off: a fresh DuckDB).
raw A: one llama_cpp.Llama with n_threads = cores, the same requests one after another.
raw B: the same parallelism as factory without Ray: a multiprocessing pool of 1-thread
engines. Model load and Ray start are outside every timed window (one warm-up request each).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import os
import tempfile
import time

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from factory.backends import Request  # noqa: E402
from factory.backends.llamacpp import CONTEXT_TOKENS, model_path  # noqa: E402
from factory.calls import Caller  # noqa: E402
from factory.executors.ray_pool import RayExecutor, ray  # noqa: E402
from factory.keys import request_seed  # noqa: E402
from factory.pipeline import bind_roles, make_recipe  # noqa: E402
from factory.recipes.tinystories import make_seed  # noqa: E402
from factory.spec import load_job  # noqa: E402
from stores import Store  # noqa: E402

MODEL = "smollm2-135m-instruct-q4_1"


def generator_of(job_path: str):
    """(spec, the generator bound as `factory run` binds it)."""
    spec = load_job(job_path)
    return spec, bind_roles(spec, make_recipe(spec))["generator"]


def requests_for(job_path: str, n: int, offset: int, max_tokens: int | None = None) -> list[Request]:
    spec, gen = generator_of(job_path)
    out = [gen.request(make_seed(spec.seed, i), request_seed(spec.seed, i, "generator")) for i in range(offset, offset + n)]
    if max_tokens is None:
        return out
    return [dataclasses.replace(r, sampling={**r.sampling, "max_tokens": max_tokens}) for r in out]


def raw_call(llm, r: Request) -> int:
    s = r.sampling
    llm.reset()
    out = llm.create_chat_completion(messages=list(r.messages), temperature=s["temperature"], top_p=s["top_p"],
                                     top_k=s["top_k"], max_tokens=s["max_tokens"],
                                     repeat_penalty=s["repeat_penalty"], seed=r.seed)
    return out["usage"]["completion_tokens"]


def raw_single(requests: list[Request], threads: int) -> tuple[int, float]:
    from llama_cpp import Llama

    llm = Llama(model_path=str(model_path(MODEL)), n_ctx=CONTEXT_TOKENS, n_threads=threads,
                n_threads_batch=threads, verbose=False)
    raw_call(llm, requests[0])  # warm-up
    start = time.perf_counter()
    tokens = sum(raw_call(llm, r) for r in requests[1:])
    return tokens, time.perf_counter() - start


_LLM = None


def _pool_init() -> None:
    global _LLM
    from llama_cpp import Llama

    _LLM = Llama(model_path=str(model_path(MODEL)), n_ctx=CONTEXT_TOKENS, n_threads=1, n_threads_batch=1, verbose=False)


def _pool_call(r: Request) -> int:
    return raw_call(_LLM, r)


def raw_pool(requests: list[Request], workers: int) -> tuple[int, float]:
    with mp.get_context("spawn").Pool(workers, initializer=_pool_init) as pool:
        pool.map(_pool_call, requests[:workers], chunksize=1)  # warm-up: one per worker
        start = time.perf_counter()
        tokens = sum(pool.map(_pool_call, requests[1:], chunksize=1))
        return tokens, time.perf_counter() - start


def through_factory(requests: list[Request], job_path: str, engines: int) -> tuple[int, float]:
    _, gen = generator_of(job_path)
    executor = RayExecutor(engines=engines, threads=1)
    try:
        with tempfile.TemporaryDirectory() as tmp, Store(os.path.join(tmp, "bench.duckdb")) as store:
            caller = Caller(store, executor)
            ref = gen.models[0][0]  # the generator's ModelRef, as `factory run` resolves it
            if (ref.backend, ref.model) != ("llamacpp", MODEL):  # the raw contenders load MODEL
                raise SystemExit(f"{job_path}: roles.generator: expected backend llamacpp, model {MODEL}; "
                                 f"got {ref.backend}, {ref.model}")
            # Warm-up: the executor deals 2 requests per actor in turn, so a plain generate()
            # of a few requests could land all on the first actor; ask each actor directly.
            ray.get([actor.generate.remote(ref, requests[:1]) for actor in executor.actors])
            start = time.perf_counter()
            completions = caller.run(gen, requests[1:])
            return sum(c.completion_tokens for c in completions), time.perf_counter() - start
    finally:
        executor.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--job", default="jobs/tinystories-demo.yaml")
    p.add_argument("--samples", type=int, default=24)
    p.add_argument("--max-tokens", type=int, default=None, help="cap every request's max_tokens (default: the job's)")
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1,
                   help="engines / threads / processes of every contender (default: all cores, as `engines: auto`)")
    args = p.parse_args()
    cores = args.cores
    # The same prompts for every contender (each resets or reloads its engine, so none gets
    # another's KV cache); request 0 is every contender's warm-up and is not timed.
    requests = requests_for(args.job, args.samples + 1, 0, args.max_tokens)
    results = {}
    for name, fn in (("factory (Ray, %d x 1-thread engines)" % cores, lambda: through_factory(requests, args.job, cores)),
                     ("raw llama-cpp-python, 1 engine x %d threads" % cores, lambda: raw_single(requests, cores)),
                     ("raw llama-cpp-python, %d processes x 1 thread" % cores, lambda: raw_pool(requests, cores))):
        tokens, seconds = fn()
        results[name] = {"completion_tokens": tokens, "seconds": round(seconds, 2), "tok_per_s": round(tokens / seconds, 1)}
        print(name, results[name], flush=True)
    names = list(results)
    factory_rate = results[names[0]]["tok_per_s"]
    for other in names[1:]:
        print(f"ratio factory / {other}: {factory_rate / results[other]['tok_per_s']:.3f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
