"""Driver memory of a large job: seeds stream through in bounded batches, so RSS should
not grow with the number of seeds. A fast in-process fake backend (no model) isolates the
driver: seeds, rendering, parsing, decisions, the cache and the DuckDB writes.

  .venv/bin/python bench/driver_rss.py --seeds 10000
  .venv/bin/python bench/driver_rss.py --seeds 100000

Each size runs in its own process; peak RSS is sampled every 0.1 s.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time

import psutil

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import fakes  # noqa: E402  (the test suite's fake backend: deterministic text, no model)

from factory.pipeline import run_job  # noqa: E402
from factory.spec import parse_job  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=10_000)
    p.add_argument("--batch", type=int, default=512)
    args = p.parse_args()
    fakes.install()
    spec = parse_job({
        "name": "rss", "recipe": "tinystories", "num_samples": args.seeds, "reviewers": 3,
        "roles": {r: {"backend": "fake", "model": "fake"} for r in ("generator", "reviewer", "adjudicator")},
        "execution": {"executor": "local", "batch_size": args.batch},
    })
    proc, peak, stop = psutil.Process(), [0], threading.Event()
    start_rss = proc.memory_info().rss

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            fakes.CALLS.clear()  # the fake records calls for tests; not part of the driver
            time.sleep(0.1)

    threading.Thread(target=sample, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        run_job(spec, db=os.path.join(tmp, "rss.duckdb"))
        seconds = time.perf_counter() - started
        stop.set()
        # The store is closed now: what DuckDB held for the file is released, what the
        # Python side kept is not. The difference to the peak tells which grew.
        after_close = proc.memory_info().rss
    result = {"seeds": args.seeds, "batch": args.batch, "rss_start_mb": round(start_rss / 2**20, 1),
              "rss_peak_mb": round(peak[0] / 2**20, 1), "rss_after_close_mb": round(after_close / 2**20, 1),
              "seconds": round(seconds, 1),
              "seeds_per_s": round(args.seeds / seconds, 1)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
