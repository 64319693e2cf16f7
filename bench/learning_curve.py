"""Accuracy against optimizer steps and CPU seconds, by student size (issue 22): how many
CPU-seconds a tiny student with a 512-token trained tokenizer needs before it solves fresh
1-2 step problems, and whether a smaller one gets there sooner.

  .venv/bin/python bench/learning_curve.py --sizes 64x4,128x4 --steps 1500 --every 250 --eval 300

(tests/bench/test_bench_smoke.py runs it with --sizes 16x1 --steps 2 --every 1 --rows 64 --eval 4.)

Rows: the reference teacher's short solutions (factory/backends/reference.py) of the first
--rows built-in problems of jobs/math-reference-60k.yaml (seed 1, 1-2 steps; duplicates
kept), in the row format factory distill trains on. Each size trains through factory's
train() (unpacked batches of --batch rows, 32; lr --lr, 0.002; 50 warm-up steps; one torch
thread; training seed 0) and at every --every steps its model is graded in place on --eval fresh built-in problems (seed 999, no
13-gram shared with a training row: the tuning items of docs/experiments.md row b.3, not
the reported ones), greedy, with the verifier. CPU seconds are this process's, training
only (grading excluded): they do not depend on the load the way wall time does, and one
thread on an idle core gives about one CPU-second a second.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from factory.backends.reference import short_solution
from factory.distill.eval_sets import OverlapFilter, builtin_items
from factory.distill.evaluate import evaluate_math
from factory.distill.format import math_prompt, math_target
from factory.distill.spec import EvaluationSpec, StudentSpec, TrainingSpec
from factory.distill.student import load_student
from factory.distill.tokenizer import trained_tokenizer
from factory.distill.train import train
from factory.recipes.base import rng_for
from factory.recipes.math_problems import FAMILIES, generate_problem


def builtin_problem(seed: int, index: int, max_steps: int = 2):
    """The problem the math recipe's builtin source draws for (seed, index) (recipes/math.py _builtin)."""
    rng = rng_for(seed, index, "math")
    family = rng.choice(FAMILIES)
    return generate_problem(seed, index, family=family, steps=rng.randint(1, min(max_steps, 6 if family == "multi_step" else 4)))


def reference_rows(n: int) -> list[tuple[str, str]]:
    problems = (builtin_problem(1, i) for i in range(n))
    return [(math_prompt(p.question), math_target(short_solution(p))) for p in problems]


def student_of(size: str, rows, vocab_size: int, cache: Path):
    hidden, layers = (int(x) for x in size.split("x"))
    spec = StudentSpec(kind="tiny", tiny={"hidden_size": hidden, "layers": layers, "heads": 4 if hidden >= 32 else 2,
                                          "intermediate_size": 3 * hidden, "max_positions": 512},
                       tokenizer={"kind": "trained", "vocab_size": vocab_size})
    texts = sorted({t for row in rows for t in row})
    return load_student(spec, cache, trained=trained_tokenizer(texts, vocab_size, cache / "curve-tokenizers"))


def curve(size: str, rows, items, args, cache: Path) -> dict:
    student = student_of(size, rows, args.vocab_size, cache)
    params = sum(p.numel() for p in student.model.parameters())
    grading = EvaluationSpec(source="builtin", problems=len(items), max_new_tokens=args.max_new_tokens)
    points, graded_cpu = [], [0.0]

    def on_step(step: int, total: int, loss: float):
        if step % args.every and step != total:
            return None
        began = time.process_time()
        train_cpu = began - start_cpu - graded_cpu[0]
        student.model.eval()
        with torch.no_grad():
            report = evaluate_math(student, items, grading)
        student.model.train()
        graded_cpu[0] += time.process_time() - began
        points.append({"step": step, "train_cpu_s": round(train_cpu, 1), "accuracy": report.metrics["accuracy"],
                       "loss": round(loss, 4)})
        print(json.dumps({"size": size, **points[-1]}), flush=True)
        return None

    config = TrainingSpec(epochs=1000, max_steps=args.steps, batch_size=args.batch, learning_rate=args.lr,
                          warmup_steps=50, max_length=512, checkpoint_every=max(args.steps, 1), seed=0, threads=1)
    start_cpu = time.process_time()
    with tempfile.TemporaryDirectory() as run_dir:
        train(student, rows, config, Path(run_dir), on_step=on_step)
    return {"size": size, "parameters": params, "points": points}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="64x4,128x4", help="comma-separated hidden x layers")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--every", type=int, default=250, help="grade every this many steps (and at the end)")
    p.add_argument("--rows", type=int, default=48_000, help="training problems (one epoch of 1,500 x 32)")
    p.add_argument("--eval", type=int, default=300, help="fresh graded problems")
    p.add_argument("--max-new-tokens", type=int, default=160)
    p.add_argument("--lr", type=float, default=0.002)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--vocab-size", type=int, default=512)
    p.add_argument("--cache", default=str(Path.home() / ".cache" / "factory"))
    args = p.parse_args()
    rows = reference_rows(args.rows)
    items, _ = builtin_items(args.eval, 999, 2, OverlapFilter([t for row in rows for t in row], 13))
    results = [curve(size, rows, items, args, Path(args.cache)) for size in args.sizes.split(",")]
    print(json.dumps({"rows": len(rows), "eval_items": len(items), "steps": args.steps, "curves": results}))


if __name__ == "__main__":
    main()
