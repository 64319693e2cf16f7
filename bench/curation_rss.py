"""Peak memory of one curation pass (issue 14: a 1M-sample pass in under 4 GB), against the
same pass on a smaller store (growth per sample) and against a process that merely opened
the store, all in one run.

  .venv/bin/python bench/curation_rss.py --samples 1000000 --baseline-samples 100000 --db /tmp/curation_rss_1m.duckdb

(tests/bench/test_bench_smoke.py runs it with --samples 600 --baseline-samples 300.)

What runs for real and what does not. Each pass is `curate_job` (factory/curation/resolve.py,
what `factory curate JOB --db DB` calls) in a child process, on a store built by
bench/stats_1m.py's fill() (its 30-word texts from a 500-word vocabulary; 1% exact duplicates,
which a pass skips) plus, here: 2% near-copies (a sample's text with its last word changed,
Jaccard 27/29 on 3-word shingles), and the embeddings cache table filled for EVERY sample with
seeded synthetic unit vectors (1% planted near-copies at cosine ~0.98), and the benchmark
embedding cache for the benchmark file. So near dedup (MinHash over every text, LSH, exact
Jaccards), semantic dedup (partitioned above 20k vectors, reading the cached vectors),
decontamination (8- and 13-gram look-ups of every text, and cosine against the benchmark
rows) against a 200-row benchmark file with 20 planted copies, quality scoring and the
one-transaction write all run as in a real pass; only the MiniLM model call is skipped
(embedding 1M texts on 2 CPUs would take hours). The child makes sure of that: the pass
fails if it tries to embed anything.

The parent samples each child's RSS with psutil every 0.1 s (the peak it saw) and the child
also reports its kernel high-water mark (VmHWM, exact). Phases (wall time, RSS after, peak
during) come from wrapping the pass's module functions in the child; "other" is the pass
minus the phases (scores, clusters, settings).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa

sys.path.insert(0, os.path.dirname(__file__))
from stats_1m import fill  # noqa: E402  (the 1M-sample store builder: real migrations, INSERT ... FROM range())

JOB = "curation_rss"
MODEL = "all-MiniLM-L6-v2"  # factory.curation.semantic_dedup.MODEL_NAME (not imported: it sets HF env vars)
DIMENSIONS = 384
CHUNK = 100_000        # vectors generated and inserted per step (a multiple of 100: a copy's original is in its chunk)
BENCH_ROWS, PLANTED = 200, 20
COPY_NOISE = 0.01      # per-dimension noise of a planted near-copy vector: cosine ~ 1 / sqrt(1 + 384 x 1e-4) = 0.98


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def vectors_for(start: int, stop: int, seed: int) -> np.ndarray:
    """Seeded unit vectors for samples start..stop-1; sample i with i % 100 == 50 is a near-copy of i - 1."""
    v = _unit(np.random.default_rng([seed, start]).standard_normal((stop - start, DIMENSIONS)))
    idx = np.arange(start, stop)
    copies = np.nonzero((idx % 100 == 50) & (idx - 1 >= start))[0]
    noise = np.random.default_rng([seed, start, 1]).standard_normal((len(copies), DIMENSIONS)) * COPY_NOISE
    v[copies] = _unit(v[copies - 1] + noise)
    return v


def _vector_table(ids: list[str], vectors: np.ndarray) -> pa.Table:
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    return pa.table({"id": ids, "embedding": pa.FixedSizeListArray.from_arrays(flat, DIMENSIONS)})


def planted(n: int) -> list[int]:
    """The samples copied into the benchmark file: never an exact duplicate (i % 100 == 99)."""
    return [k * 100 + 10 for k in range(min(PLANTED, n // 100))]


def build(path: Path, n: int, seed: int) -> None:
    from factory.curation.decontaminate import file_sha256
    from factory.spec import CurationSpec
    from stores import Store, summaries
    from stores.transaction import transaction

    path.unlink(missing_ok=True)
    bench_file = Path(f"{path}.bench.jsonl")
    with Store(path) as store:
        con = store.con
        fill(con, JOB, n, 30)
        # Near-copies: sample i (i % 50 == 25) becomes sample i - 1 with its last word changed.
        con.execute("""UPDATE samples AS s SET text = regexp_replace(p.text, '\\S+$', 'copyword'),
                              content_hash = md5(regexp_replace(p.text, '\\S+$', 'copyword'))
                       FROM samples AS p WHERE s.job = ? AND p.job = ? AND s.seed_index % 50 = 25
                         AND p.seed_index = s.seed_index - 1""", [JOB, JOB])
        for start in range(0, n, CHUNK):
            stop = min(n, start + CHUNK)
            table = _vector_table([f"{JOB}-s-{i}" for i in range(start, stop)], vectors_for(start, stop, seed))
            con.register("new_vectors", table)
            con.execute("INSERT INTO embeddings SELECT id, ?, embedding::FLOAT[384] FROM new_vectors", [MODEL])
            con.unregister("new_vectors")
        # The benchmark: PLANTED rows are 20-word spans of samples (13-gram hits), the rest random words
        # from another vocabulary; a planted row's vector is its sample's (a semantic hit, cosine 1).
        sources = planted(n)
        texts = dict(con.execute("SELECT seed_index, text FROM samples WHERE job = ? AND seed_index IN "
                                 "(SELECT unnest(?))", [JOB, sources]).fetchall())
        rng = np.random.default_rng([seed, 2])
        rows = [" ".join(texts[i].split()[5:25]) for i in sources]
        rows += [" ".join(f"b{w}" for w in rng.integers(0, 500, 30)) for _ in range(BENCH_ROWS - len(rows))]
        bench_file.write_text("".join(json.dumps({"question": r}) + "\n" for r in rows))
        row_vectors = _unit(rng.standard_normal((BENCH_ROWS, DIMENSIONS)))
        if sources:  # each planted row's vector is its sample's, as stored
            stored = dict(con.execute("SELECT sample_id, embedding FROM embeddings WHERE sample_id IN "
                                      "(SELECT unnest(?))", [[f"{JOB}-s-{i}" for i in sources]]).fetchall())
            row_vectors[:len(sources)] = np.array([stored[f"{JOB}-s-{i}"] for i in sources], dtype=np.float32)
        con.register("new_vectors", _vector_table([str(r) for r in range(BENCH_ROWS)], row_vectors))
        con.execute("INSERT INTO benchmark_embeddings SELECT ?, 'question', ?, id::INTEGER, embedding::FLOAT[384] "
                    "FROM new_vectors", [file_sha256(str(bench_file)), MODEL])
        con.unregister("new_vectors")
        # The settings `factory curate JOB` reads (stored with the job): defaults plus the benchmark file.
        config = CurationSpec(decontaminate=[{"path": str(bench_file), "name": "bench"}]).model_dump(mode="json")
        con.execute("UPDATE jobs SET curation = ? WHERE fingerprint = ?", [json.dumps(config, sort_keys=True), JOB])
        with transaction(con):  # the per-job stats summaries a store made by `factory run` has
            summaries.rebuild(con, JOB)


def usable(path: Path, n: int) -> bool:
    """A store this bench built for n samples (--db reuse): its counts and benchmark file."""
    if not path.exists() or not Path(f"{path}.bench.jsonl").exists():
        return False
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        try:
            counts = con.execute("SELECT (SELECT count(*) FROM samples WHERE job = ?), "
                                 "(SELECT count(*) FROM embeddings WHERE model = ?)", [JOB, MODEL]).fetchone()
        except duckdb.Error:
            return False
    return counts == (n, n)


# --- the child: one pass (or only opening the store), phases measured from inside ---------

def _rss() -> int:
    return psutil.Process().memory_info().rss


def _hwm_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))


_PEAK_KB = [0]  # the high-water mark across the resets below: the pass's exact peak


def _reset_hwm() -> None:
    _PEAK_KB[0] = max(_PEAK_KB[0], _hwm_kb())
    with open("/proc/self/clear_refs", "w") as f:  # "5" resets VmHWM to the current RSS (Linux >= 4.0)
        f.write("5")


def _wrap(module, name: str, label: str, phases: list) -> None:
    inner = getattr(module, name)

    def timed(*args, **kwargs):
        _reset_hwm()
        start = time.perf_counter()
        result = inner(*args, **kwargs)
        phases.append({"phase": label, "seconds": round(time.perf_counter() - start, 2),
                       "rss_after_mb": round(_rss() / 2**20), "peak_mb": round(_hwm_kb() / 1024)})
        return result

    setattr(module, name, timed)


def child(mode: str, db: str) -> None:
    from factory.curation import decontaminate, near_dedup, run, semantic_dedup
    from factory.curation.resolve import curate_job
    from stores import Store

    if mode == "open":
        with Store(db):
            print(json.dumps({"rss_mb": round(_rss() / 2**20), "vmhwm_mb": round(_hwm_kb() / 1024)}))
        return

    def no_model(texts, *args, **kwargs):
        raise RuntimeError(f"bench: the pass asked MiniLM for {len(texts)} embeddings: the cache is incomplete")

    semantic_dedup.embed = no_model
    phases: list[dict] = []
    for module, name, label in ((run, "sample_signals", "read samples"),
                                (near_dedup, "near_duplicate_pairs", "near dedup (MinHash, LSH, Jaccard)"),
                                (run, "embedding_matrix", "read cached vectors"),
                                (semantic_dedup, "similar_pairs", "semantic dedup"),
                                (decontaminate, "contamination_hits", "n-gram decontamination"),
                                (run, "_semantic_contamination", "semantic decontamination"),
                                (run, "write_curation", "write (one transaction)")):
        _wrap(module, name, label, phases)
    start = time.perf_counter()
    summary = curate_job(JOB, db)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": round(seconds, 1), "vmhwm_mb": round(max(_PEAK_KB[0], _hwm_kb()) / 1024),
                      "phases": phases,
                      "summary": summary}))


# --- the parent --------------------------------------------------------------------------

def sampled(args: list[str]) -> tuple[dict, float]:
    """Runs this script as a child; (its JSON line, the peak RSS in MB seen every 0.1 s)."""
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    watched, peak, stop = psutil.Process(proc.pid), [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], watched.memory_info().rss)
            except psutil.NoSuchProcess:
                return
            time.sleep(0.1)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, err = proc.communicate()
    stop.set()
    thread.join()
    if proc.returncode != 0:
        sys.exit(f"child {' '.join(args)} exited {proc.returncode}:\n{err[-4000:]}")
    return json.loads(out.strip().splitlines()[-1]), peak[0] / 2**20


def measure(path: Path, n: int, seed: int) -> dict:
    start = time.perf_counter()
    reused = usable(path, n)
    if not reused:
        build(path, n, seed)
    print(f"{n:,} samples: store {'reused' if reused else 'built'} in {time.perf_counter() - start:.0f} s, "
          f"{path.stat().st_size / 2**30:.2f} GiB ({path})", flush=True)
    opened, open_peak = sampled(["--child", "open", str(path)])
    result, pass_peak = sampled(["--child", "pass", str(path)])
    print(f"{n:,} samples: pass {result['seconds']} s, peak RSS {pass_peak:.0f} MB sampled / "
          f"{result['vmhwm_mb']} MB VmHWM; open-store process {opened['rss_mb']} MB", flush=True)
    print(f"  {'phase':<38}{'seconds':>9}{'RSS after MB':>14}{'peak MB':>9}")
    for p in result["phases"]:
        print(f"  {p['phase']:<38}{p['seconds']:>9.2f}{p['rss_after_mb']:>14}{p['peak_mb']:>9}")
    other = result["seconds"] - sum(p["seconds"] for p in result["phases"])
    print(f"  {'other (scores, clusters, settings)':<38}{other:>9.2f}")
    print(f"  summary: {json.dumps({k: v for k, v in result['summary'].items() if k not in ('db',)})}", flush=True)
    return {"samples": n, "seconds": result["seconds"], "peak_mb": round(pass_peak), "vmhwm_mb": result["vmhwm_mb"],
            "open_mb": opened["rss_mb"], "open_peak_mb": round(open_peak), "phases": result["phases"],
            "summary": result["summary"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--baseline-samples", type=int, default=100_000, help="the same pass on a smaller store")
    parser.add_argument("--db", default="/tmp/curation_rss.duckdb",
                        help="the --samples store; reused when it holds this bench's store of that size")
    parser.add_argument("--baseline-db", help="default: the --db path with _baseline before .duckdb")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    db = Path(args.db)
    baseline_db = Path(args.baseline_db or db.with_name(db.stem + "_baseline" + db.suffix))
    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores; anything over ~0.3 means a neighbour shares them)",
          flush=True)
    base = measure(baseline_db, args.baseline_samples, args.seed)
    big = measure(db, args.samples, args.seed)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    growth = (big["peak_mb"] - base["peak_mb"]) / (big["samples"] - base["samples"]) * 2**20
    print(f"ratio peak RSS {big['samples']:,} / {base['samples']:,}: {big['peak_mb'] / base['peak_mb']:.2f}x "
          f"({big['samples'] / base['samples']:.0f}x the samples); growth {growth:,.0f} bytes per sample")
    print(f"ratio peak RSS {big['samples']:,} pass / open store: {big['peak_mb'] / big['open_mb']:.1f}x")
    print(f"ratio seconds {big['samples']:,} / {base['samples']:,}: {big['seconds'] / base['seconds']:.2f}x")
    print(f"target < 4 GB at {big['samples']:,}: {'met' if big['vmhwm_mb'] * 2**20 < 4e9 else 'missed'} "
          f"({big['vmhwm_mb'] / 1024:.2f} GiB)")
    print(json.dumps({"baseline": base, "main": big}))


if __name__ == "__main__":
    main()
