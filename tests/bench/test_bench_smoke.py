"""Every bench/*.py runs here with tiny sizes, as a subprocess exactly as docs/benchmarks.md
runs it, and must print its result line: a bench that rots (an API it calls moved, a
schema it fills grew a column) fails the suite instead of the next person who measures.

Sizes are the smallest that still take each bench's whole code path (every contender,
every warm-up, every printed table). Each takes 15-300 s on 2 shared cores at load 12-18
(a subprocess that imports torch, Ray or DuckDB and runs the bench), so all but the
SMOKED check are marked `slow` (or `model`): the fast lane leaves them out.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"


def run_bench(name: str, *args: str, expect_rc: int = 0, timeout: int = 300) -> str:
    proc = subprocess.run([sys.executable, str(BENCH / name), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert proc.returncode == expect_rc, (f"bench/{name} {' '.join(args)} exited {proc.returncode}\n"
                                          f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
    return proc.stdout + proc.stderr if expect_rc else proc.stdout


def number_after(output: str, pattern: str) -> float:
    """The number that follows `pattern` (a regex) on its line; it must be finite and > 0."""
    found = re.findall(rf"{pattern}\s*(-?[0-9][0-9,]*\.?[0-9]*)", output)
    assert found, f"no line matching {pattern!r} in:\n{output}"
    value = float(found[-1].replace(",", ""))
    assert math.isfinite(value) and value > 0, f"{pattern!r}: {value} in:\n{output}"
    return value


def last_json(output: str) -> dict:
    lines = [line for line in output.splitlines() if line.startswith("{")]
    assert lines, f"no JSON line in:\n{output}"
    return json.loads(lines[-1])


@pytest.mark.slow
def test_sandbox_throughput():
    out = run_bench("sandbox_throughput.py", "--programs", "4", "--workers", "2")
    number_after(out, r"ratio sandbox / bare:")
    results = last_json(out)
    # The programs return the problems' answers: both runners must get all of them right.
    assert [r["correct"] for r in results.values()] == [4, 4], out


@pytest.mark.slow
def test_near_dedup():
    # 120 docs, 20 of them planted near-copies: a handful of true pairs, so recall means something.
    out = run_bench("near_dedup.py", "--docs", "120", "--repeats", "1")
    number_after(out, r"ratio factory/rensa docs/s:")
    number_after(out, r"ratio factory/datasketch docs/s:")
    row = re.search(r"^factory near_duplicate_pairs\s+[0-9,]+\s+[0-9.]+\s+(\d+)\s+([0-9.]+)\s+([0-9.]+)$", out, re.M)
    assert row, out
    pairs, recall, precision = int(row[1]), float(row[2]), float(row[3])
    assert pairs > 0 and precision == 1.0, out  # factory checks every candidate's exact Jaccard


@pytest.mark.slow
def test_near_dedup_ray():
    # 600 docs on a 2-CPU local Ray: the Ray Data path must return the single-process pairs.
    out = run_bench("near_dedup_ray.py", "--docs", "600", "--workers", "2", "--repeats", "1")
    number_after(out, r"ratio ray/single-process docs/s:")
    assert "same pairs: True" in out, out


@pytest.mark.slow
def test_semantic_dedup():
    out = run_bench("semantic_dedup.py", "--rows", "1000", "--subset", "200", "--crossover", "500", "--big", "2000")
    number_after(out, r"ratio DuckDB / exact:")
    number_after(out, r"exact / numpy floor:")
    number_after(out, r"ratio exact / partitioned at 1,000:")
    number_after(out, r"crossover 500: .* exact / partitioned")
    assert re.search(r"^exact 1,000 x 384: .* 10/10 planted found", out, re.M), out  # 1% planted, all over 0.95
    part = re.search(r"^partitioned 1,000 x 384 .* recall vs exact ([0-9.]+), pairs not in exact (\d+)$", out, re.M)
    assert part and float(part[1]) >= 0.95 and part[2] == "0", out
    assert re.search(r"^partitioned 2,000 x 384 .* 20/20 planted found", out, re.M), out


@pytest.mark.slow
def test_stats_1m(tmp_path):
    out = run_bench("stats_1m.py", "--samples", "2000", "--other-samples", "500", "--repeats", "1",
                    "--db", str(tmp_path / "stats.duckdb"), "--batch-seeds", "8", "--batches", "2")
    number_after(out, r"ratio job_stats / funnel:")
    number_after(out, r"ratio exact / funnel:")
    number_after(out, r"ratio write with / without:")
    assert "same stats from summaries and rows: True" in out, out
    alphas = re.search(r"SQL (-?[0-9.]+), krippendorff package (-?[0-9.]+)", out)
    assert alphas and abs(float(alphas[1]) - float(alphas[2])) < 1e-3, out


@pytest.mark.slow
def test_browse_1m(tmp_path):
    out = run_bench("browse_1m.py", "--samples", "2000", "--repeats", "1", "--db", str(tmp_path / "browse.duckdb"))
    number_after(out, r"ratio HTTP page / raw query \(first page\):")
    number_after(out, r"ratio this / previous statements \(first page\):")
    number_after(out, r"funnel page with the report's histograms:")
    number_after(out, r"slowest HTTP page:")
    assert re.search(r"^first page\s+[0-9.]+\s+[0-9.]+\s+[0-9.]+\s+50$", out, re.M), out


@pytest.mark.slow
def test_curation_rss(tmp_path):
    # 600 samples (a 300-sample baseline): every phase of a real pass on pre-filled vectors.
    out = run_bench("curation_rss.py", "--samples", "600", "--baseline-samples", "300", "--db",
                    str(tmp_path / "c.duckdb"))
    number_after(out, r"ratio peak RSS 600 / 300:")
    number_after(out, r"ratio peak RSS 600 pass / open store:")
    summary = last_json(out)["main"]["summary"]
    # Every planted duplicate and copy is found: 12 near-copies, 6 vector copies, 6 benchmark copies.
    assert (summary["near_clusters"], summary["semantic_clusters"], summary["contaminated"],
            summary["semantic_contaminated"]) == (12, 6, 6, 6), out


@pytest.mark.slow
def test_driver_rss():
    out = run_bench("driver_rss.py", "--seeds", "12", "--batch", "4")
    result = last_json(out)
    assert result["seeds"] == 12 and result["seeds_per_s"] > 0 and result["rss_peak_mb"] >= result["rss_start_mb"], out


@pytest.mark.slow
def test_training_throughput():
    out = run_bench("training_throughput.py", "--steps", "1", "--warmup-steps", "1", "--batch", "2",
                    "--max-length", "128", "--rows", "4")
    number_after(out, r"ratio factory/plain:")
    results = last_json(out)
    assert results["settings"]["batch"] == 2 and results["ratio factory/plain"] > 0, out
    # both tokenizers side by side (issue 22): SmolLM2's 49,152 tokens and the 512 trained on the rows
    sizes = {name: r["vocabulary"] for name, r in results["by_tokenizer"].items()}
    assert sizes == {"smollm2": 49152, "trained": 512}, out
    assert all(r["step_seconds"]["plain"] > 0 for r in results["by_tokenizer"].values()), out


@pytest.mark.slow
def test_learning_curve():
    out = run_bench("learning_curve.py", "--sizes", "16x1", "--steps", "2", "--every", "1", "--rows", "64", "--eval", "4")
    result = last_json(out)
    (curve,) = result["curves"]
    assert result["eval_items"] == 4 and curve["size"] == "16x1" and curve["parameters"] > 0, out
    assert [p["step"] for p in curve["points"]] == [1, 2], out
    assert all(0 <= p["accuracy"] <= 1 and p["train_cpu_s"] >= 0 for p in curve["points"]), out


@pytest.mark.slow
def test_parallel_runs():
    out = run_bench("parallel_runs.py", "--problems", "40", "--steps", "2", "--seeds", "1", "--eval", "4")
    number_after(out, r"ratio serial/parallel wall:")
    result = last_json(out)
    # the same runs either way (one torch thread each in parallel, the bench's --threads serially)
    assert set(result["serial"]["runs"]) == set(result["parallel"]["runs"]) == {"short/1", "mix-long/1"}, out


@pytest.mark.slow
def test_distributed_training():
    out = run_bench("distributed_training.py", "--steps", "2", "--batch", "2", "--max-length", "64", "--rows", "4")
    number_after(out, r"ratio 2 workers / 1 worker, loop steps/s:")
    results = last_json(out)
    assert [r["steps"] for r in results["runs"]["2"]] == [2, 2] and results["settings"]["batch"] == 2, out


@pytest.mark.model
def test_generation_throughput():
    out = run_bench("generation_throughput.py", "--samples", "1", "--max-tokens", "8", "--cores", "1")
    number_after(out, r"ratio factory / raw llama-cpp-python, 1 engine x 1 threads:")
    number_after(out, r"ratio factory / raw llama-cpp-python, 1 processes x 1 thread:")
    results = last_json(out)
    assert len(results) == 3 and all(0 < r["completion_tokens"] <= 8 for r in results.values()), out


@pytest.mark.model
def test_batched_generation():
    out = run_bench("batched_generation.py", "--requests", "2", "--max-tokens", "8", "--slots", "1,2", "--threads", "1",
                    "--repeats", "1")
    number_after(out, r"ratio slots 2 / slots 1 tok/s:")
    assert re.search(r"alone vs in a batch of 2: [0-2]/2 texts identical", out), out


@pytest.mark.model
def test_prefix_sharing():
    out = run_bench("prefix_sharing.py", "--stories", "1", "--story-tokens", "16", "--max-tokens", "4", "--slots", "2",
                    "--threads", "1", "--repeats", "1")
    assert number_after(out, r"ratio shared / today prefill tokens:") < 0.34, out  # 3 reviewers, 1 prefill
    number_after(out, r"ratio shared / today wall time:")
    assert "texts identical, shared vs today: 3/3" in out, out


@pytest.mark.model
def test_openai_throughput():
    out = run_bench("openai_throughput.py", "--requests", "1", "--concurrency", "1", "--max-tokens", "8",
                    "--server-threads", "1")
    number_after(out, r"ratio factory / bare:")


@pytest.mark.model
def test_likelihood_cost():
    out = run_bench("likelihood_cost.py", "--samples", "1", "--max-tokens", "16")
    number_after(out, r"ratio score / generate per sample:")
    results = last_json(out)
    # The chosen path and llama-cpp-python's logits_all path compute the same values.
    assert results["scored_tokens"] > 0 and results["max_abs_difference"] < 1e-3, out


@pytest.mark.slow
def test_vllm_throughput_arguments():
    """The bench itself needs vllm (tests/vllm's venv); here only its arguments and its
    message when vllm is missing: the default suite never imports vllm."""
    out = run_bench("vllm_throughput.py", "--help")
    for option in ("--model", "--prompts", "--max-tokens", "--rounds", "--threads"):
        assert option in out, out
    if importlib.util.find_spec("vllm") is None:  # find_spec does not import it
        err = run_bench("vllm_throughput.py", "--prompts", "1", expect_rc=1)
        assert "vllm is not installed" in err, err


@pytest.mark.model  # all-MiniLM-L6-v2 (sentence-transformers) embeds the texts
def test_paraphrase_contamination():
    out = run_bench("paraphrase_contamination.py", "--clean", "5", "--benchmark", "tests/data/gsm8k_train_subset.jsonl")
    assert re.search(r"^\| 0\.80 \| \d+/30", out, re.M), out


@pytest.mark.slow
def test_streaming_pipeline():
    out = run_bench("streaming_pipeline.py", "--seeds", "16", "--step-ms", "0.2", "--slots", "4", "--batch-size", "4",
                    "--in-flight", "1,3")
    number_after(out, r"ratio busy/wall 3 / 1:")
    assert "same rows: True" in out, out


@pytest.mark.model
def test_demo_walltime():
    # 1 seed, 48 tokens per call (a story needs >= 30 words): A and B through `factory run`, then raw.
    out = run_bench("demo_walltime.py", "--limit", "1", "--max-tokens", "48", "--repeats", "1",
                    "--raw-threads", "1")
    for ratio in ("wall B / A", "tok/s B / A", "tok/s B / raw single stream", "tok/s A / raw single stream"):
        number_after(out, rf"ratio {ratio}:")
    assert "same request keys/seeds in A and B: True (1 samples)" in out, out


SMOKED = {"sandbox_throughput.py", "near_dedup.py", "near_dedup_ray.py", "semantic_dedup.py", "stats_1m.py", "browse_1m.py", "driver_rss.py", "curation_rss.py",
          "training_throughput.py", "generation_throughput.py", "openai_throughput.py", "vllm_throughput.py",
          "likelihood_cost.py", "paraphrase_contamination.py", "batched_generation.py", "prefix_sharing.py",
          "distributed_training.py", "streaming_pipeline.py", "demo_walltime.py", "learning_curve.py",
          "parallel_runs.py"}


def test_every_bench_has_a_smoke_test():
    assert {p.name for p in BENCH.glob("*.py")} == SMOKED
