"""Engine busy time / wall time through the real pipeline, one batch at a time vs several
batches in flight (execution.batches_in_flight, factory/streaming.py), on a latency-model
engine: a backend whose call costs a fixed time per decoding step for any number of
requests up to its slots (as a GPU's decode step does), i.e. step_ms x the longest
completion of the call. It answers as the tests' fake backend does (tests/fakes.py), so
both runs make the same rows; only the engine's idle time differs.

    .venv/bin/python bench/streaming_pipeline.py --seeds 2000 --step-ms 5 --slots 8 --in-flight 1,4

The job: tinystories with 3 reviewers and the adjudicator, `factory run` through the
Python API (factory.api.run), local executor, execution.slots_per_engine = slots, so an
engine call carries up to `slots` requests. One run per batches_in_flight, in one process,
on a fresh database each.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import duckdb  # noqa: E402

import fakes  # noqa: E402  (the answers only: deterministic text from each request)
from factory import api  # noqa: E402
from factory.backends import ModelIdentity, register  # noqa: E402


class Engine:
    """What the latency model records: busy seconds (inside generate), calls, requests."""

    def __init__(self):
        self.lock = threading.Lock()
        self.busy = 0.0
        self.calls = 0
        self.requests = 0


ENGINE = Engine()
SETTINGS = {"step_s": 0.001, "slots": 8}


class LatencyBackend:
    """A user backend (README: identity(ref), a (ref, threads) constructor, generate(requests))
    whose time is a GPU's: step_s per decoding step, for up to `slots` requests at once."""

    def __init__(self, ref, threads: int = 1):
        self.answers = fakes.FakeBackend("fake", threads)

    @classmethod
    def identity(cls, ref) -> ModelIdentity:
        return ModelIdentity(backend="latency", model=ref.model, file_sha256="0" * 64)

    def generate(self, requests):
        started = time.perf_counter()
        out = self.answers.generate(requests)
        slots = SETTINGS["slots"]
        for i in range(0, len(out), slots):  # more than `slots` requests: one more pass each
            time.sleep(SETTINGS["step_s"] * max(c.completion_tokens for c in out[i:i + slots]))
        with ENGINE.lock:
            ENGINE.busy += time.perf_counter() - started
            ENGINE.calls += 1
            ENGINE.requests += len(requests)
        return out


def job(seeds: int, slots: int, batch_size: int, in_flight: int) -> dict:
    roles = {role: {"backend": "latency", "model": "latency", "template": f"tinystories/{role}@1"}
             for role in ("generator", "reviewer", "adjudicator")}
    return {"name": "streaming-bench", "recipe": "tinystories", "num_samples": seeds, "seed": 7, "reviewers": 3,
            "roles": roles, "execution": {"executor": "local", "batch_size": batch_size, "slots_per_engine": slots,
                                          "batches_in_flight": in_flight}}


def run_once(workdir: Path, seeds: int, slots: int, batch_size: int, in_flight: int) -> dict:
    db = workdir / f"in_flight_{in_flight}.duckdb"
    ENGINE.busy, ENGINE.calls, ENGINE.requests = 0.0, 0, 0
    started = time.perf_counter()
    result = api.run(job(seeds, slots, batch_size, in_flight), db=db)
    wall = time.perf_counter() - started
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute("SELECT sample_id, text, duplicate_of FROM samples ORDER BY sample_id").fetchall()
        verdicts = con.execute("SELECT sample_id, decision, stage FROM verdicts ORDER BY sample_id").fetchall()
    finally:
        con.close()
    return {"batches_in_flight": in_flight, "seeds": result.seeds_processed, "wall_s": round(wall, 3),
            "engine_busy_s": round(ENGINE.busy, 3), "busy_over_wall": round(ENGINE.busy / wall, 4),
            "engine_calls": ENGINE.calls, "requests_per_call": round(ENGINE.requests / max(ENGINE.calls, 1), 2),
            "rows": hash((tuple(rows), tuple(verdicts)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2000)
    parser.add_argument("--step-ms", type=float, default=5.0, help="engine time per decoding step")
    parser.add_argument("--slots", type=int, default=8, help="requests one engine step decodes together")
    parser.add_argument("--batch-size", type=int, default=8, help="execution.batch_size")
    parser.add_argument("--in-flight", default="1,4", help="execution.batches_in_flight values; the first is the baseline")
    args = parser.parse_args()
    SETTINGS.update(step_s=args.step_ms / 1000, slots=args.slots)
    fakes.install()  # the answers' helpers; the job itself names backend "latency"
    register("latency", LatencyBackend.identity, lambda ref, threads=1: LatencyBackend(ref, threads))
    values = [int(v) for v in args.in_flight.split(",")]
    print(f"{args.seeds} seeds, batch_size {args.batch_size}, slots {args.slots}, {args.step_ms} ms a decoding step; "
          f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in values:
            r = run_once(Path(tmp), args.seeds, args.slots, args.batch_size, n)
            results.append(r)
            print(f"busy/wall batches_in_flight {n}: {r['busy_over_wall']:.3f} (engine {r['engine_busy_s']:.1f} s "
                  f"of {r['wall_s']:.1f} s wall; {r['engine_calls']} calls, {r['requests_per_call']} requests a call)")
    base = results[0]
    for r in results[1:]:
        n = r["batches_in_flight"]
        print(f"ratio busy/wall {n} / {base['batches_in_flight']}: {r['busy_over_wall'] / base['busy_over_wall']:.3f}")
        print(f"ratio wall time {n} / {base['batches_in_flight']}: {r['wall_s'] / base['wall_s']:.3f}")
    print(f"same rows: {len({r['rows'] for r in results}) == 1}")
    print(json.dumps({str(r["batches_in_flight"]): {k: v for k, v in r.items() if k != "rows"} for r in results}))


if __name__ == "__main__":
    main()
