"""Sandboxed verifications per second on this machine, against running the same programs
with a bare `python -c` subprocess, same worker count, in the same run; prints a ratio.

  .venv/bin/python bench/sandbox_throughput.py --programs 200

Programs are TinyGSM-style functions built from the built-in problem generator's worked
steps (one variable per step), so every one runs and returns the exact answer.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from factory.recipes.math_problems import generate_problem
from factory.sandbox import run_program
from roles.answers import answers_match
from factory.verify.verifier import canonical_number


def program(seed: int, index: int) -> tuple[str, str]:
    p = generate_problem(seed, index)
    lines = ["def simple_math_problem():", f'    """{p.question}"""']
    for n, step in enumerate(p.solution):
        expr = step.split("=")[0].strip().replace("$", "")
        lines.append(f"    step{n} = {expr}")
    lines.append(f"    return step{len(p.solution) - 1}")
    return "\n".join(lines) + "\n", p.answer


def sandboxed(src: str) -> str | None:
    r = run_program(src)
    return r.value if r.status == "ok" else None


def bare(src: str) -> str | None:
    out = subprocess.run([sys.executable, "-c", src + "\nprint(simple_math_problem())"],
                         capture_output=True, text=True, timeout=10)
    return out.stdout.strip() if out.returncode == 0 else None


def timed(fn, programs, workers: int) -> tuple[float, int]:
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        values = list(pool.map(fn, [src for src, _ in programs]))
    seconds = time.perf_counter() - start
    right = sum(answers_match(canonical_number(v), answer) for v, (_, answer) in zip(values, programs))
    return seconds, right


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--programs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    programs = [program(7, i) for i in range(args.programs)]
    timed(sandboxed, programs[:4], args.workers)  # warm the page cache for both
    timed(bare, programs[:4], args.workers)
    results = {}
    for name, fn in (("factory sandbox", sandboxed), ("bare python -c", bare)):
        seconds, right = timed(fn, programs, args.workers)
        results[name] = {"programs": len(programs), "correct": right, "seconds": round(seconds, 2),
                         "per_second": round(len(programs) / seconds, 1)}
        print(name, results[name], flush=True)
    ratio = results["factory sandbox"]["per_second"] / results["bare python -c"]["per_second"]
    print(f"ratio sandbox / bare: {ratio:.3f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
