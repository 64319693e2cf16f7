"""Generation tokens/s through factory's VLLMBackend.generate against raw vllm.LLM.generate:
the same 16 prompts and sampling params, one engine, in the same process and run.

  bash tests/vllm/run.sh   # once: builds .venv-vllm and .cache/smollm2-135m-hf
  OMP_NUM_THREADS=2 VLLM_CPU_KVCACHE_SPACE=1 VLLM_ENABLE_V1_MULTIPROCESSING=0 \
      .venv-vllm/bin/python bench/vllm_throughput.py [--model .cache/smollm2-135m-hf] [--rounds 4]

The prompts are the generator requests that `factory run jobs/tinystories-demo.yaml`
renders (its template, sampling params and per-request seeds; max_tokens capped by
--max-tokens). factory: VLLMBackend.generate(requests), which renders the chat template
via LLM.chat and builds one SamplingParams per request. raw: the backend's own engine
(backend.llm, so one model in memory), called as vllm.LLM.generate on the prompts
pre-rendered with the tokenizer's chat template outside the timed window, with
SamplingParams built by hand. Both sides run the same seeds, so they decode the same
tokens. The prefix cache is reset before every timed window, and the sides alternate
for --rounds rounds (ABBA order) after one untimed warm-up each; the texts of the two
sides are compared.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import factory  # noqa: F401 - first: `roles` alone hits a circular import through factory
from factory.backends.vllm_backend import VLLMBackend
from factory.keys import request_seed
from factory.pipeline import bind_roles, make_recipe
from factory.recipes.tinystories import make_seed
from factory.spec import load_job

REPO = Path(__file__).resolve().parents[1]


def factory_requests(job_path: str, n: int, max_tokens: int):
    spec = load_job(job_path)
    gen = bind_roles(spec, make_recipe(spec))["generator"]
    out = []
    for i in range(n):
        r = gen.request(make_seed(spec.seed, i), request_seed(spec.seed, i, "generator"))
        out.append(dataclasses.replace(r, sampling={**r.sampling, "max_tokens": max_tokens}))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(REPO / ".cache" / "smollm2-135m-hf"))
    p.add_argument("--job", default=str(REPO / "jobs" / "tinystories-demo.yaml"))
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = p.parse_args()
    # After parse_args: `--help` works without vllm (the default venv's smoke test checks it).
    try:
        import vllm
    except ImportError:
        raise SystemExit("vllm is not installed: run this under .venv-vllm (bash tests/vllm/run.sh builds it)") from None

    requests = factory_requests(args.job, args.prompts, args.max_tokens)
    started = time.perf_counter()
    backend = VLLMBackend(SimpleNamespace(backend="vllm", model=args.model, endpoint=None), threads=args.threads)
    load_s = time.perf_counter() - started
    llm = backend.llm
    tokenizer = llm.get_tokenizer()
    prompts = [tokenizer.apply_chat_template(list(r.messages), tokenize=False, add_generation_prompt=True)
               for r in requests]
    raw_params = [vllm.SamplingParams(temperature=r.sampling["temperature"], top_p=r.sampling["top_p"],
                                      top_k=r.sampling["top_k"], max_tokens=r.sampling["max_tokens"],
                                      repetition_penalty=r.sampling["repeat_penalty"], seed=r.seed)
                  for r in requests]

    texts: dict[str, list[str]] = {}

    def run_factory() -> int:
        completions = backend.generate(requests)
        texts["factory"] = [c.text for c in completions]
        return sum(c.completion_tokens for c in completions)

    def run_raw() -> int:
        outs = llm.generate(prompts, raw_params, use_tqdm=False)
        texts["raw"] = [o.outputs[0].text for o in outs]
        return sum(len(o.outputs[0].token_ids) for o in outs)

    sides = {"factory VLLMBackend.generate": run_factory, "raw vllm.LLM.generate": run_raw}
    for fn in sides.values():  # warm-up, untimed
        llm.reset_prefix_cache()
        fn()
    totals = {name: [0, 0.0] for name in sides}
    windows = []
    for i in range(args.rounds):
        # ABBA: each side goes first in every other round, so drift in machine speed cancels.
        order = list(sides) if i % 2 == 0 else list(reversed(sides))
        for name in order:
            llm.reset_prefix_cache()
            t0 = time.perf_counter()
            tokens = sides[name]()
            seconds = time.perf_counter() - t0
            totals[name][0] += tokens
            totals[name][1] += seconds
            windows.append((i, name, tokens, round(seconds, 2)))
    for w in windows:
        print("round %d %-30s %5d tokens %6.2f s" % w)
    print("same texts on both sides:", texts["factory"] == texts["raw"])
    results = {name: {"completion_tokens": tok, "seconds": round(sec, 2), "tok_per_s": round(tok / sec, 1)}
               for name, (tok, sec) in totals.items()}
    for name, r in results.items():
        print(f"{name}: {r}")
    f, raw = (results[n]["tok_per_s"] for n in sides)
    ratio = f / raw
    print(f"engine load {load_s:.1f}s; {args.prompts} prompts x max_tokens {args.max_tokens}, "
          f"{args.rounds} rounds, threads {args.threads}")
    print(f"ratio factory / raw: {ratio:.3f} (target >= 0.95)")
    print(json.dumps({"results": results, "ratio": round(ratio, 3), "load_s": round(load_s, 1)}))


if __name__ == "__main__":
    main()
