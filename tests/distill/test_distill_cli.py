"""`factory distill` end to end on a small store: real tiny students really train on CPU,
the real verifier grades them, runs rows hold real metrics; a kill -9 mid-training is
resumed from the last checkpoint and the runs table never holds a half-written run."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from support import REPO, fake_job, query
from factory.cli import main
from factory.pipeline import run_job
from factory.spec import parse_job

def write_spec(tmp_path, db, **over) -> str:
    spec = {"name": "d", "db": str(db), "source": {"job": "fake-math", "use": "all", "require": "answered"},
            "student": {"kind": "tiny", "tiny": {"hidden_size": 32, "layers": 1, "heads": 2, "intermediate_size": 64}},
            "training": {"epochs": 2, "batch_size": 4, "checkpoint_every": 2, "max_length": 128},
            "evaluation": {"source": "held_out", "problems": 6, "max_new_tokens": 24, "overlap_ngram": 13},
            "output_dir": str(tmp_path / "runs")}
    spec.update(over)
    path = tmp_path / "distill.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    return str(path)


def test_distill_trains_evaluates_and_records_runs(tmp_path, math_db, student_cache, monkeypatch, capsys):
    monkeypatch.setenv("FACTORY_CACHE", str(student_cache))
    spec = write_spec(tmp_path, math_db)
    assert main(["distill", spec, "--quiet"]) == 0
    out = capsys.readouterr()
    assert "long: trained" in out.err
    assert "not enough seeds to call" in out.out or "no mixture is ahead" in out.out  # one seed: never a call
    runs = query(math_db, "SELECT mixture, metric, value, ci_low, ci_high, checkpoint, json_extract(training, '$.steps'),"
                          " json_extract(metrics, '$.n') FROM runs WHERE distill = 'd' ORDER BY mixture")
    assert [r[0] for r in runs] == ["long", "mix-long", "short"]
    for mixture, metric, value, low, high, checkpoint, steps, n in runs:
        assert metric == "accuracy" and 0 <= low <= value <= high <= 1 and int(n) >= 1
        assert os.path.isdir(checkpoint) and os.path.isfile(os.path.join(checkpoint, "config.json"))
        assert int(steps) >= 2
    evals = query(math_db, "SELECT count(*), count(DISTINCT run_id), sum(output_tokens > 0) FROM run_evals")
    assert evals[0][1] == 3 and evals[0][0] == evals[0][2]
    # mixture rows are recorded; held-out problems never trained
    held = {r[0] for r in query(math_db, "SELECT DISTINCT item_id FROM run_evals")}
    trained = {r[0] for r in query(math_db, "SELECT DISTINCT sample_id FROM mixture_rows")}
    assert held and trained and not held & trained
    # a rerun trains nothing and `factory runs --json` answers from the table
    assert main(["distill", spec, "--quiet"]) == 0
    assert "already done" in capsys.readouterr().err
    assert query(math_db, "SELECT count(*) FROM runs WHERE distill = 'd'") == [(3,)]
    assert main(["runs", "d", "--db", str(math_db), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["mixture"] for r in rows} == {"long", "short", "mix-long"}
    # the job's HTML report shows the runs trained on its data
    assert main(["report", "fake-math", "--db", str(math_db), "-o", str(tmp_path / "r.html")]) == 0
    html = (tmp_path / "r.html").read_text()
    assert "Distillation runs" in html and "mix-long" in html and "no distillation run" not in html


@pytest.mark.slow  # a `factory distill` killed and rerun in subprocesses
def test_kill_during_training_resumes_and_never_half_writes_a_run(tmp_path, math_db, student_cache):
    db = tmp_path / "m.duckdb"
    db.write_bytes(math_db.read_bytes())
    spec = write_spec(tmp_path, db, name="k", mixtures=["short"],
                      # 15 epochs of ~5 steps: the kill comes at the first checkpoint (step 3), with ~70
                      # steps still to train whatever the machine's speed (60 epochs cost the rerun ~50 s)
                      training={"epochs": 15, "batch_size": 4, "checkpoint_every": 3, "max_length": 128})
    env = {**os.environ, "FACTORY_CACHE": str(student_cache), "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.Popen([sys.executable, "-m", "factory.cli", "distill", spec, "--quiet"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = tmp_path / "runs"
    # kill on an event: the first committed checkpoint (written as .tmp-step-*, then renamed
    # to step-*, so a step-* directory is whole); polled every 0.2 s, at most 240 s
    deadline = time.time() + 240
    while time.time() < deadline and not list(checkpoints.glob("*/checkpoints/step-*")) and proc.poll() is None:
        time.sleep(0.2)
    assert list(checkpoints.glob("*/checkpoints/step-*")), "no checkpoint within 240 s (or the run ended first)"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert query(db, "SELECT count(*) FROM runs WHERE distill = 'k'") == [(0,)]  # killed mid-training: no run row
    done_before = max(int(p.name.split("-")[1]) for p in checkpoints.glob("*/checkpoints/step-*"))
    # the same spec again: the same run id, so training resumes from the newest checkpoint
    proc = subprocess.run([sys.executable, "-m", "factory.cli", "distill", spec, "--quiet"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    (training,) = query(db, "SELECT training FROM runs WHERE distill = 'k'")[0]
    assert json.loads(training)["resumed_from_step"] >= done_before
    assert query(db, "SELECT count(*) FROM runs WHERE distill = 'k'") == [(1,)]


def test_stories_route_trains_a_tiny_lm_and_grades_continuations(tmp_path, student_cache, monkeypatch, capsys):
    """TinyStories: a tiny student from scratch on a stories job's accepted stories; its
    continuations of held-out openings graded with the reviewer rubric of the source job
    (the fake reviewer here; tests/distill/test_stories.py grades with the real model)."""
    monkeypatch.setenv("FACTORY_CACHE", str(student_cache))
    db = tmp_path / "s.duckdb"
    run_job(parse_job(fake_job(name="stories", num_samples=40)), db=db)
    spec = write_spec(tmp_path, db, name="tiny-stories", task="stories", source={"job": "stories"},
                      evaluation={"source": "held_out", "problems": 4, "max_new_tokens": 20,
                                  "grading": {"prompt_words": 6}})
    assert main(["distill", spec, "--quiet"]) == 0
    (row,) = query(db, "SELECT mixture, metric, value, json_extract(metrics, '$.graded'), rows FROM runs r "
                       "JOIN mixtures m USING (mixture_id)")
    assert row[0] == "all" and row[1] == "mean_review_score" and 1 <= row[2] <= 10 and int(row[3]) == 4
    accepted = query(db, "SELECT count(*) FROM accepted")[0][0]
    assert row[4] == accepted - 4  # every accepted story but the held-out ones
    graded = query(db, "SELECT count(*) FROM run_evals WHERE score IS NOT NULL AND output <> ''")
    assert graded == [(4,)]
    assert "mean_review_score" in capsys.readouterr().out
