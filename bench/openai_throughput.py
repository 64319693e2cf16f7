"""factory's openai backend against a bare async OpenAI client, same prompts, same
concurrency, same server (llama.cpp's server with the packaged GGUF on 127.0.0.1), in the
same run; prints a ratio.

  .venv/bin/python bench/openai_throughput.py --requests 16 --concurrency 4

(tests/bench/test_bench_smoke.py runs it with --requests 1 --concurrency 1 --max-tokens 8 --server-threads 1.)

factory: the generator requests of jobs/tinystories-demo.yaml through the Caller (cache
write included, on a fresh DuckDB) and the remote executor. bare: openai.AsyncOpenAI with
an asyncio.Semaphore of the same size. One warm-up request each.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from factory.backends.llamacpp import model_path
from factory.calls import BoundRole, Caller
from factory.executors import Dispatcher
from factory.keys import request_seed
from factory.recipes.tinystories import make_seed
from factory.spec import EndpointSpec, ModelRef, load_job
from roles import Generator
from stores import Store


def start_server(port: int, threads: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(model_path("smollm2-135m-instruct-q4_1")),
                             "--host", "127.0.0.1", "--port", str(port), "--n_threads", str(threads), "--n_ctx", "4096"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1)
            return proc
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("server did not start")


async def bare(base_url: str, requests, concurrency: int) -> tuple[int, float]:
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key="not-needed")
    gate = asyncio.Semaphore(concurrency)

    async def one(r) -> int:
        async with gate:
            s = r.sampling
            out = await client.chat.completions.create(
                model="smollm2", messages=list(r.messages), temperature=s["temperature"], top_p=s["top_p"],
                max_tokens=s["max_tokens"], seed=r.seed,
                extra_body={"top_k": s["top_k"], "repeat_penalty": s["repeat_penalty"]})
            return out.usage.completion_tokens

    await one(requests[0])
    start = time.perf_counter()
    tokens = sum(await asyncio.gather(*(one(r) for r in requests[1:])))
    return tokens, time.perf_counter() - start


def through_factory(bound: BoundRole, requests) -> tuple[int, float]:
    dispatcher = Dispatcher("local", 1, 1)
    with tempfile.TemporaryDirectory() as tmp, Store(os.path.join(tmp, "b.duckdb")) as store:
        dispatcher.generate(bound.models[0][0], requests[:1])  # warm-up
        start = time.perf_counter()
        out = Caller(store, dispatcher).run(bound, requests[1:])
        return sum(c.completion_tokens for c in out), time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=16)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--server-threads", type=int, default=2, help="llama.cpp server's --n_threads")
    p.add_argument("--max-tokens", type=int, default=None, help="cap every request's max_tokens (default: the job's)")
    args = p.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    server = start_server(port, args.server_threads)
    print(f"server up in {time.perf_counter() - started:.1f} s", flush=True)
    try:
        base_url = f"http://127.0.0.1:{port}/v1"
        spec = load_job("jobs/tinystories-demo.yaml")
        gen = spec.role("generator")
        ref = ModelRef(backend="openai", model="smollm2",
                       endpoint=EndpointSpec(base_url=base_url, schema_format="json_object",
                                             max_concurrency=args.concurrency))
        from factory.backends import model_identity

        bound = BoundRole(Generator(gen.template), gen, [(ref, model_identity(ref).as_dict())])
        requests = [bound.request(make_seed(spec.seed, i), request_seed(spec.seed, i, "generator"))
                    for i in range(args.requests + 1)]
        if args.max_tokens is not None:  # both sides read max_tokens from the same Request
            requests = [dataclasses.replace(r, sampling={**r.sampling, "max_tokens": args.max_tokens}) for r in requests]
        f_tokens, f_seconds = through_factory(bound, requests)
        b_tokens, b_seconds = asyncio.run(bare(base_url, requests, args.concurrency))
        f_rate, b_rate = f_tokens / f_seconds, b_tokens / b_seconds
        print(f"factory openai backend: {f_tokens} tokens in {f_seconds:.1f} s = {f_rate:.1f} tok/s")
        print(f"bare AsyncOpenAI:       {b_tokens} tokens in {b_seconds:.1f} s = {b_rate:.1f} tok/s")
        print(f"ratio factory / bare: {f_rate / b_rate:.3f} (concurrency {args.concurrency})")
    finally:
        server.kill()


if __name__ == "__main__":
    main()
