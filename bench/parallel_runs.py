"""A distillation's runs one at a time on --threads torch threads (what the demo did) against
`parallel_runs: --workers` processes of one thread each, in one run: wall time of each and
the ratio. Both go through `run_distill` on copies of one database, so data, tokenizer,
training and evaluation are the real ones and the two give the same run ids and results.

  .venv/bin/python bench/parallel_runs.py --problems 2000 --steps 300 --seeds 1,2

(tests/bench/test_bench_smoke.py runs it with --problems 40 --steps 2 --seeds 1 --eval 4.)

Data: --problems built-in 1-2 step problems answered by the scripted reference teacher
(jobs/math-reference-demo.yaml's roles, `programs: 0`), made once. Distillation: the demo's
student (hidden 64 x 2, a 512-token tokenizer trained on the rows), mixtures short and
mix-long, batches of 32 unpacked rows, --steps steps, graded on --eval fresh problems.
Serial first, then parallel: a load change on the shared box hits the second; the load
average is printed beside each.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from factory.distill.run import run_distill
from factory.distill.spec import DistillSpec
from factory.pipeline import run_job
from factory.spec import parse_job

REFERENCE = {"backend": "reference", "model": "math-worked-steps"}


def make_data(db: Path, problems: int) -> None:
    job = {"name": "bench-ref", "recipe": "math", "num_samples": problems, "seed": 1, "reviewers": 0,
           "options": {"source": "builtin", "max_steps": 2, "programs": 0},
           "roles": {r: REFERENCE for r in ("generator", "long_solver", "short_solver")},
           "decision": {"accept_mean": 6.0, "max_spread": 3.0, "reject_mean": 3.0},
           "execution": {"executor": "local", "batch_size": 256}, "db": str(db)}
    run_job(parse_job(job), db=db)


def spec_of(db: Path, out: Path, args, parallel: int, threads: int) -> DistillSpec:
    return DistillSpec.model_validate({
        "name": "bench-parallel", "task": "math", "db": str(db), "output_dir": str(out),
        "source": {"job": "bench-ref", "use": "accepted", "require": "correct"},
        "mixtures": ["short", "mix-long"], "seeds": [int(s) for s in args.seeds.split(",")],
        "parallel_runs": parallel,
        "student": {"kind": "tiny", "tokenizer": {"kind": "trained", "vocab_size": args.vocab_size},
                    "tiny": {"hidden_size": 64, "layers": 2, "heads": 4, "intermediate_size": 192,
                             "max_positions": 512}},
        "training": {"epochs": 1000, "max_steps": args.steps, "batch_size": 32, "learning_rate": 0.002,
                     "warmup_steps": 50, "max_length": 512, "checkpoint_every": max(args.steps, 1),
                     "threads": threads},
        "evaluation": {"source": "builtin", "problems": args.eval, "seed": 1000, "max_steps": 2,
                       "max_new_tokens": 160}})


def timed(label: str, spec: DistillSpec) -> dict:
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    summaries = run_distill(spec)
    wall = time.perf_counter() - began
    result = {"wall_s": round(wall, 1), "load": [round(load_before, 1), round(os.getloadavg()[0], 1)],
              "runs": {f"{s.mixture}/{s.seed}": s.value for s in summaries}}
    print(f"{label}: {wall:.1f} s wall, load {result['load'][0]} -> {result['load'][1]}", flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--problems", type=int, default=2000)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seeds", default="1,2", help="comma-separated: runs = 2 mixtures x seeds")
    p.add_argument("--eval", type=int, default=100)
    p.add_argument("--threads", type=int, default=2, help="torch threads of the one-at-a-time runs")
    p.add_argument("--workers", type=int, default=2, help="parallel_runs (one thread each)")
    p.add_argument("--vocab-size", type=int, default=512)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "data.duckdb"
        make_data(data, args.problems)
        results = {}
        for label, parallel, threads in (("serial", 1, args.threads), ("parallel", args.workers, 1)):
            db = tmp / f"{label}.duckdb"
            shutil.copy(data, db)
            results[label] = timed(f"{label} ({parallel} at a time, {threads} thread(s) each)",
                                   spec_of(db, tmp / label, args, parallel, threads))
    ratio = results["serial"]["wall_s"] / max(results["parallel"]["wall_s"], 1e-9)
    print(f"ratio serial/parallel wall: {ratio:.2f}")
    print(json.dumps({"settings": vars(args), **results, "ratio serial/parallel": round(ratio, 2),
                      "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
