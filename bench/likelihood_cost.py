"""The likelihood signal's cost per sample against generating the sample, on the embedded
model, in the same process and run; prints a ratio.

  RAY_AUTH_MODE=disabled .venv/bin/python bench/likelihood_cost.py --samples 8

(tests/bench/test_bench_smoke.py runs it with --samples 1 --max-tokens 16.)

generate: the demo job's generator requests (tinystories-demo seeds, its sampling with
max_tokens as given), through LlamaCppBackend.generate, one after another.
score: the generated texts through LlamaCppBackend.score (what ScoreLikelihood runs: one
forward pass a text, logits for every position through the low-level batch API).
logits_all: the same texts through a second Llama(logits_all=True).eval (the public API's
way, which keeps an n_ctx x vocabulary float32 array per engine), as a check of the chosen
path's speed and of its values. One engine, 1 thread; model load and a warm-up request of
each are outside every timed window.
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import numpy as np  # noqa: E402

from factory.backends.llamacpp import CONTEXT_TOKENS, LlamaCppBackend, model_path  # noqa: E402
from factory.pipeline import bind_roles, make_recipe  # noqa: E402
from factory.keys import request_seed  # noqa: E402
from factory.spec import load_job  # noqa: E402

MODEL = "smollm2-135m-instruct-q4_1"


def requests(n: int, max_tokens: int):
    spec = load_job("jobs/tinystories-demo.yaml")
    recipe = make_recipe(spec)
    bound = bind_roles(spec, recipe)["generator"]
    out = []
    for i in range(n + 1):  # the first is the warm-up
        r = bound.request(recipe.make_seed(i), request_seed(spec.seed, i, "generator"), i)
        out.append(r.__class__(**{**r.__dict__, "sampling": {**r.sampling, "max_tokens": max_tokens}}))
    return out


def logits_all_score(llm, text: str) -> tuple[float, int]:
    tokens = [llm.token_bos(), *llm.tokenize(text.encode(), add_bos=False)][:CONTEXT_TOKENS]
    llm.reset()
    llm.eval(tokens)
    rows = llm.scores[: len(tokens) - 1]
    top = rows.max(axis=1)
    log_z = top + np.log(np.exp(rows - top[:, None]).sum(axis=1, dtype=np.float64))
    return float((rows[np.arange(len(tokens) - 1), tokens[1:]] - log_z).mean()), len(tokens) - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=256, help="the demo generator's max_tokens")
    args = parser.parse_args()

    backend = LlamaCppBackend(MODEL, threads=1)
    warm, *todo = requests(args.samples, args.max_tokens)
    backend.generate([warm])
    started = time.perf_counter()
    completions = backend.generate(todo)
    generate_s = time.perf_counter() - started
    texts = [c.text for c in completions]
    generated_tokens = sum(c.completion_tokens for c in completions)

    backend.score([warm.messages[-1]["content"]])
    started = time.perf_counter()
    scores = backend.score(texts)
    score_s = time.perf_counter() - started
    scored_tokens = sum(n for _, n in scores)

    from llama_cpp import Llama

    llm = Llama(model_path=str(model_path(MODEL)), n_ctx=CONTEXT_TOKENS, logits_all=True, n_threads=1,
                n_threads_batch=1, verbose=False)
    logits_all_score(llm, texts[0])
    started = time.perf_counter()
    reference = [logits_all_score(llm, t) for t in texts]
    reference_s = time.perf_counter() - started
    worst = max(abs(a[0] - b[0]) for a, b in zip(scores, reference))

    n = len(texts)
    print(f"{'path':<12}{'s/sample':>10}{'tokens/s':>10}")
    print(f"{'generate':<12}{generate_s / n:>10.3f}{generated_tokens / generate_s:>10.1f}")
    print(f"{'score':<12}{score_s / n:>10.3f}{scored_tokens / score_s:>10.1f}")
    print(f"{'logits_all':<12}{reference_s / n:>10.3f}{scored_tokens / reference_s:>10.1f}")
    print(f"mean logprob per sample: {[round(s, 3) for s, _ in scores]}; largest difference score vs logits_all "
          f"{worst:.2e}")
    print(f"ratio score / generate per sample: {score_s / generate_s:.4f}")
    print(f"ratio score / logits_all: {score_s / reference_s:.3f}")
    print(json.dumps({"samples": n, "max_tokens": args.max_tokens, "generate_s": round(generate_s, 3),
                      "score_s": round(score_s, 3), "logits_all_s": round(reference_s, 3),
                      "generated_tokens": generated_tokens, "scored_tokens": scored_tokens,
                      "ratio score / generate": round(score_s / generate_s, 4), "max_abs_difference": worst}))


if __name__ == "__main__":
    main()
