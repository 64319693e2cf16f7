"""Training tokens/s through factory's train() against a plain torch loop, same student, same
batches, same steps, in the same run; prints a ratio. Then the same for each tokenizer of
--tokenizers side by side (issue 22): SmolLM2's 49,152 tokens and a BPE of --vocab-size
trained on the rows (factory/distill/tokenizer.py), with the seconds a step takes for each.

  .venv/bin/python bench/training_throughput.py --steps 30

(tests/bench/test_bench_smoke.py runs it with --steps 1 --warmup-steps 1 --batch 2 --max-length 128 --rows 4.)

Student: the default TinyStudentSpec (3.3 M parameters with SmolLM2's 49,152-token vocabulary;
~0.1 M with a 512-token trained one: the tied embedding is vocabulary x 64).
The trained tokenizer is trained on the rows of max(--rows, TOKENIZER_ROWS) problems, so that
--vocab-size can be filled even when --rows is 4 (the smoke test); its time is not timed.
Rows: 64 built-in math problems as math_prompt(question) + math_target(worked solution),
batch 8, max_length 256, unpacked; 64 / 8 = 8 batches an epoch, so 30 steps are ~4 epochs.
factory: the whole train() call (tokenizing the rows, the loop, a checkpoint every 25 steps,
the final save), timed from outside, plus its own loop-only seconds.
plain: AdamW over the same pre-built batches (make_batches, outside the timed window):
forward, backward, step, zero_grad; nothing else.
Each contender loads a fresh student (same init) outside its timed window; one 3-step warm-up
each first, then rounds of factory, plain, plain, factory so that drift hits both alike.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from factory.distill.format import math_prompt, math_target
from factory.distill.spec import StudentSpec, TrainingSpec
from factory.distill.student import load_student
from factory.distill.tokenizer import trained_tokenizer
from factory.distill.train import encode_row, make_batches, train
from factory.recipes.math_problems import generate_problem

BATCH, MAX_LENGTH, ROWS = 8, 256, 64  # defaults of --batch, --max-length, --rows
# 1,000 problems' rows hold ~600 distinct word pieces: enough to fill 512 tokens
TOKENIZER_ROWS = 1000


def math_rows(n: int) -> list[tuple[str, str]]:
    rows = []
    for i in range(n):
        p = generate_problem(seed=0, index=i)
        rows.append((math_prompt(p.question), math_target("\n".join(p.solution) + f"\nThe answer is {p.answer}.")))
    return rows


def config(steps: int, sizes) -> TrainingSpec:
    """sizes: the parsed arguments (threads, batch, max_length)."""
    return TrainingSpec(epochs=1000, max_steps=steps, batch_size=sizes.batch, max_length=sizes.max_length,
                        learning_rate=1e-3, checkpoint_every=25, seed=0, threads=sizes.threads)


def student_for(name: str, sizes, cache: Path):
    """A fresh default tiny student (same init) with tokenizer `name`: smollm2 or trained."""
    if name == "smollm2":
        return load_student(StudentSpec(), cache)
    spec = StudentSpec(tokenizer={"kind": "trained", "vocab_size": sizes.vocab_size})
    texts = [t for row in math_rows(max(sizes.rows, TOKENIZER_ROWS)) for t in row]
    return load_student(spec, cache, trained=trained_tokenizer(texts, sizes.vocab_size, cache / "bench-tokenizers"))


def through_factory(rows, steps: int, sizes, cache: Path) -> dict:
    student = student_for(sizes.tokenizer, sizes, cache)
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        result = train(student, rows, config(steps, sizes), Path(run_dir))
        seconds = time.perf_counter() - start
    return {"tokens": result.train_tokens, "seconds": round(seconds, 3), "loop_seconds": result.seconds,
            "steps": result.steps - result.resumed_from_step,
            "tok_per_s": round(result.train_tokens / seconds, 1), "final_loss": round(result.final_loss, 4)}


def plain_loop(rows, steps: int, sizes, cache: Path) -> dict:
    student = student_for(sizes.tokenizer, sizes, cache)
    model, tok = student.model, student.tokenizer
    cfg = config(steps, sizes)
    threads, batch_size, max_length = sizes.threads, sizes.batch, sizes.max_length
    encoded = [encode_row(tok, p, t, max_length) for p, t in rows]
    per_epoch = -(-len(encoded) // batch_size)
    batches = [b for epoch in range(-(-steps // per_epoch))
               for b in make_batches(encoded, batch_size, cfg.seed, epoch, False, max_length, tok.pad_token_id)][:steps]
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate,
                                      weight_decay=cfg.weight_decay)
        model.train()
        tokens, losses = 0, []
        start = time.perf_counter()
        for batch in batches:
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            tokens += int(batch["attention_mask"].sum())
            losses.append(loss.item())
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(previous)
    return {"tokens": tokens, "seconds": round(seconds, 3), "tok_per_s": round(tokens / seconds, 1),
            "steps": len(batches), "final_loss": round(sum(losses[-10:]) / len(losses[-10:]), 4)}


def compare(rows, args, cache: Path) -> dict:
    """factory train() against the plain loop for the tokenizer args.tokenizer."""
    contenders = {"factory train()": through_factory, "plain torch loop": plain_loop}
    for fn in contenders.values():
        fn(rows, args.warmup_steps, args, cache)  # warm-up: allocator, oneDNN kernels, tokenizer cache
    runs = {name: [] for name in contenders}
    for name in ("factory train()", "plain torch loop", "plain torch loop", "factory train()") * args.rounds:
        runs[name].append(contenders[name](rows, args.steps, args, cache))
        print(args.tokenizer, name, runs[name][-1], flush=True)
    results = {}
    for name, done in runs.items():
        tokens, seconds = sum(r["tokens"] for r in done), sum(r["seconds"] for r in done)
        results[name] = {"runs": done, "tok_per_s": round(tokens / seconds, 1),
                         "best_tok_per_s": max(r["tok_per_s"] for r in done)}
    factory_rate = results["factory train()"]["tok_per_s"]
    loop_only = sum(r["tokens"] for r in runs["factory train()"]) / sum(r["loop_seconds"] for r in runs["factory train()"])
    plain_rate = results["plain torch loop"]["tok_per_s"]
    results["ratio factory/plain"] = round(factory_rate / plain_rate, 3)
    results["ratio factory loop-only/plain"] = round(loop_only / plain_rate, 3)
    # On a shared machine the best run of each is the one least slowed by other work.
    results["ratio best factory/best plain"] = round(
        results["factory train()"]["best_tok_per_s"] / results["plain torch loop"]["best_tok_per_s"], 3)
    # A step of the factory loop (checkpoints included), and of the plain loop: the side-by-side figure.
    results["step_seconds"] = {
        "factory loop": round(sum(r["loop_seconds"] for r in runs["factory train()"])
                              / sum(r["steps"] for r in runs["factory train()"]), 4),
        "plain": round(sum(r["seconds"] for r in runs["plain torch loop"])
                       / sum(r["steps"] for r in runs["plain torch loop"]), 4)}
    student = student_for(args.tokenizer, args, cache)
    results["vocabulary"] = len(student.tokenizer)
    results["parameters"] = student.description["parameters"]
    results["tokens_per_row"] = round(sum(r["tokens"] for r in runs["plain torch loop"])
                                      / sum(r["steps"] for r in runs["plain torch loop"]) / args.batch, 1)
    return results


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--rounds", type=int, default=1, help="each round runs factory, plain, plain, factory")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--batch", type=int, default=BATCH)
    p.add_argument("--max-length", type=int, default=MAX_LENGTH)
    p.add_argument("--rows", type=int, default=ROWS)
    p.add_argument("--warmup-steps", type=int, default=3, help="untimed steps per contender before the rounds")
    p.add_argument("--cache", default=os.environ.get("FACTORY_CACHE", os.path.expanduser("~/.cache/factory")),
                   help="where the SmolLM2 tokenizer is cached (read out of the GGUF once, ~5 s); "
                   "the same place as `factory distill` (FACTORY_CACHE)")
    p.add_argument("--tokenizers", default="smollm2,trained", help="comma-separated: smollm2, trained")
    p.add_argument("--vocab-size", type=int, default=512, help="the trained tokenizer's vocabulary")
    args = p.parse_args()
    cache = Path(args.cache)
    rows = math_rows(args.rows)
    names = [t.strip() for t in args.tokenizers.split(",") if t.strip()]
    by_tokenizer = {}
    for name in names:
        args.tokenizer = name
        by_tokenizer[name] = compare(rows, args, cache)
    # The first tokenizer's figures stay at the top level, where they were before --tokenizers.
    results = {**by_tokenizer[names[0]], "by_tokenizer": by_tokenizer}
    results["settings"] = {"steps": args.steps, "threads": args.threads, "batch": args.batch, "max_length": args.max_length,
                           "rows": args.rows, "student": StudentSpec().model_dump(), "tokenizers": names,
                           "vocab_size": args.vocab_size}
    print(f"ratio factory/plain: {results['ratio factory/plain']:.3f} "
          f"(loop only: {results['ratio factory loop-only/plain']:.3f}; "
          f"best run of each: {results['ratio best factory/best plain']:.3f})")
    print("tokenizer   vocabulary  parameters  tokens/row  s/step factory loop  s/step plain")
    for name, r in by_tokenizer.items():
        print(f"{name:<10}  {r['vocabulary']:>10}  {r['parameters']:>10}  {r['tokens_per_row']:>10}  "
              f"{r['step_seconds']['factory loop']:>19}  {r['step_seconds']['plain']:>12}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
