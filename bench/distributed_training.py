"""Optimizer steps/s of train() with training.workers 2 (Ray Train, DDP over gloo, each worker
on its half of every batch) against workers 1 (the one-process loop), same rows, same global
batch, same steps, in the same run; prints the ratio 2 workers / 1 worker.

  .venv/bin/python bench/distributed_training.py --steps 20

(tests/bench/test_bench_smoke.py runs it with --steps 2 --batch 2 --max-length 64 --rows 4.)

Student: the default TinyStudentSpec (3.3 M parameters). Rows: bench/training_throughput.py's
64 built-in math rows, batch 8, max_length 256. Threads: the one process gets --threads
(default: every core); each of the 2 workers gets --threads // 2 (at least 1), so both
contenders use the same cores. Two ratios: the loop only (TrainResult.seconds: the
optimizer steps, rank 0's clock for Ray), and the whole train() call (for Ray: starting
the worker group, sending the model, the final save). Ray starts once, outside both windows
(a local Ray of --threads CPUs: `address="local"`, so another cluster on the machine is not
joined). Contenders alternate 1, 2, 2, 1 per round so that drift hits both alike.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import ray

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_throughput import math_rows  # noqa: E402

from factory.distill.spec import StudentSpec, TrainingSpec  # noqa: E402
from factory.distill.student import load_student  # noqa: E402
from factory.distill.train import train  # noqa: E402


def run(rows, workers: int, args, cache: Path) -> dict:
    threads = args.threads if workers == 1 else max(1, args.threads // workers)
    config = TrainingSpec(epochs=1000, max_steps=args.steps, batch_size=args.batch, max_length=args.max_length,
                          learning_rate=1e-3, checkpoint_every=1000, seed=0, threads=threads, workers=workers)
    student = load_student(StudentSpec(), cache)
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        result = train(student, rows, config, Path(run_dir))
        seconds = time.perf_counter() - start
    return {"workers": workers, "steps": result.steps, "seconds": round(seconds, 3), "loop_seconds": result.seconds,
            "steps_per_s": round(result.steps / seconds, 3), "loop_steps_per_s": round(result.steps / result.seconds, 3),
            "final_loss": round(result.final_loss, 4)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=1, help="each round runs 1, 2, 2, 1 workers")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--rows", type=int, default=64)
    p.add_argument("--cache", default=os.environ.get("FACTORY_CACHE", os.path.expanduser("~/.cache/factory")),
                   help="where the SmolLM2 tokenizer is cached (the same place as `factory distill`)")
    args = p.parse_args()
    cache = Path(args.cache)
    rows = math_rows(args.rows)
    ray.init(address="local", num_cpus=max(2, args.threads), include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    runs = {1: [], 2: []}
    try:
        for workers in (1, 2, 2, 1) * args.rounds:
            runs[workers].append(run(rows, workers, args, cache))
            print(runs[workers][-1], flush=True)
    finally:
        ray.shutdown()
    rate = {w: sum(r["steps"] for r in done) / sum(r["seconds"] for r in done) for w, done in runs.items()}
    loop = {w: sum(r["steps"] for r in done) / sum(r["loop_seconds"] for r in done) for w, done in runs.items()}
    results = {
        "runs": runs,
        "ratio 2 workers / 1 worker, loop steps/s": round(loop[2] / loop[1], 3),
        "ratio 2 workers / 1 worker, whole train() steps/s": round(rate[2] / rate[1], 3),
        "settings": {"steps": args.steps, "threads": args.threads, "batch": args.batch, "max_length": args.max_length,
                     "rows": args.rows, "student": StudentSpec().model_dump()},
    }
    print(f"ratio 2 workers / 1 worker, loop steps/s: {results['ratio 2 workers / 1 worker, loop steps/s']:.3f} "
          f"(whole train(): {results['ratio 2 workers / 1 worker, whole train() steps/s']:.3f})")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
