"""The likelihood signal on the fake backend (fakes.fake_likelihood is a function of the
text): stored per sample, cached by model + text, gating with decision.min_likelihood, in
the quality score and in explain; a backend that cannot score is refused at load."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from factory import api
import fakes
from support import REPO, fake_job, query, run_job_yaml
from factory.curation.quality import SampleSignals, quality
from factory.recipes.tinystories import TinyStories
from factory.spec import JobError, QualityWeights, load_job, parse_job


def test_every_sample_in_play_gets_its_likelihood_once(tmp_path):
    fakes.SCORED.clear()
    run_job_yaml(tmp_path, fake_job(), limit=4)
    first = list(fakes.SCORED)
    run_job_yaml(tmp_path, fake_job())
    rows = query(tmp_path / "f.duckdb", """SELECT s.text, g.value, g.prompt_tokens, g.details FROM signals g
                                           JOIN samples s USING (sample_id) WHERE g.signal = 'likelihood'""")
    in_play = query(tmp_path / "f.duckdb", "SELECT count(*) FROM samples WHERE duplicate_of IS NULL")[0][0]
    assert rows and len(rows) == in_play  # exact duplicates are not scored; nothing else is gated here
    for text, value, tokens, details in rows:
        assert (value, tokens) == fakes.fake_likelihood(text)
        assert json.loads(details)["n_tokens"] == tokens
    # The second run scored only the texts of seeds 4..11: the first four were done.
    assert first and not set(first) & set(fakes.SCORED[len(first):])
    assert len(fakes.SCORED) == len(set(fakes.SCORED))


def test_cached_by_model_and_text_across_jobs(tmp_path):
    fakes.SCORED.clear()
    run_job_yaml(tmp_path, fake_job(), limit=4)
    scored = len(fakes.SCORED)
    assert scored > 0
    run_job_yaml(tmp_path, fake_job(name="same-texts-other-job", reviewers=2), limit=4)  # another job, same stories
    assert len(fakes.SCORED) == scored


def test_min_likelihood_rejects_before_review(tmp_path):
    run_job_yaml(tmp_path, fake_job(decision={"accept_mean": 6, "reject_mean": 4, "min_likelihood": -2.5}))
    db = tmp_path / "f.duckdb"
    low = {r[0] for r in query(db, "SELECT sample_id FROM signals WHERE signal = 'likelihood' AND value < -2.5")}
    gated = {r[0]: r[1] for r in query(db, "SELECT sample_id, reason FROM verdicts WHERE stage = 'likelihood'")}
    assert low and set(gated) == low
    assert all(r.startswith("mean log-likelihood -") and "< -2.5 under fake" in r for r in gated.values())
    assert query(db, f"SELECT count(*) FROM reviews WHERE sample_id IN ({','.join(repr(s) for s in low)})")[0][0] == 0
    story = api.explain(next(iter(low)), db)
    assert story["likelihood"]["mean_logprob"] < -2.5 and story["likelihood"]["model"] == "fake"
    assert {"gate": "likelihood", "result": "reject", "min_likelihood": -2.5,
            "value": story["likelihood"]["mean_logprob"]} in story["gates"]


def test_explain_without_a_gate_shows_the_signal_as_off(tmp_path):
    run_job_yaml(tmp_path, fake_job(), limit=4)
    sid = query(tmp_path / "f.duckdb", "SELECT sample_id FROM signals WHERE signal = 'likelihood' LIMIT 1")[0][0]
    story = api.explain(sid, tmp_path / "f.duckdb")
    gate = next(g for g in story["gates"] if g["gate"] == "likelihood")
    assert gate["result"] == "off" and gate["value"] == story["likelihood"]["mean_logprob"]
    assert next(g for g in story["gates"] if g["gate"] == "truncated")["result"] == "pass"


def test_quality_has_a_likelihood_component():
    weights = QualityWeights(reviewers=0.5, adjudicator=0, verifier=0, rules=0, likelihood=0.5)
    with_signal = SampleSignals("s", 10.0, None, None, None, removed=False, likelihood=-4.0)
    score, parts = quality(with_signal, weights, TinyStories)
    assert parts["likelihood"] == 0.5 and score == 0.75  # -4 is halfway from -7 to -1
    assert quality(SampleSignals("s", 10.0, None, None, None, removed=False, likelihood=-9.0), weights,
                   TinyStories)[1]["likelihood"] == 0.0
    score, parts = quality(SampleSignals("s", 10.0, None, None, None, removed=False), weights, TinyStories)
    assert parts["likelihood"] is None and score == 1.0  # absent: left out, the rest renormalized


NO_SCORE_BACKEND = '''
from factory.backends import Completion, ModelIdentity


class NoScore:
    def __init__(self, ref, threads=1):
        self.identity = NoScore.identity(ref)

    @classmethod
    def identity(cls, ref):
        return ModelIdentity(backend="noscore", model=ref.model)

    def generate(self, requests):
        return [Completion(key=r.key, text="x", prompt_tokens=1, completion_tokens=1, seconds=0) for r in requests]
'''


def test_a_backend_without_score_is_refused_at_load_in_one_line(tmp_path):
    (tmp_path / "noscore.py").write_text(NO_SCORE_BACKEND)
    job = fake_job(decision={"min_likelihood": -3.0})
    for role in job["roles"].values():  # the CLI's process knows no fake backend
        role.update(backend="noscore.py:NoScore", model="m")
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    with pytest.raises(JobError, match="decision.min_likelihood: backend noscore.py:NoScore cannot give the "
                                       "likelihood signal; use a llamacpp reference model"):
        load_job(path)
    db = tmp_path / "out.duckdb"
    proc = subprocess.run([sys.executable, "-m", "factory.cli", "run", str(path), "--db", str(db)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "cannot give the likelihood signal" in proc.stderr
    assert not db.exists()
    # Not asked for: the same backend runs, without the signal.
    path.write_text(yaml.safe_dump({**job, "decision": {}}))
    assert load_job(path).decision.min_likelihood is None


def test_openai_reference_is_accepted_at_load():
    # whether its server returns prompt logprobs is known at the first call: tests/backends/test_openai_likelihood.py
    job = fake_job(decision={"likelihood_model": {"backend": "openai", "model": "m",
                                                  "endpoint": {"base_url": "http://127.0.0.1:9/v1"}}})
    assert parse_job(job).decision.likelihood_model.backend == "openai"


def test_demo_keeps_its_old_fingerprints():
    # The demo as it was before the gates (its gate settings at the recipe's defaults) keeps
    # the fingerprints databases made then carry.
    data = yaml.safe_load((REPO / "jobs/tinystories-demo.yaml").read_text())
    for gate in ("min_likelihood", "truncated", "require_seed_words", "score", "min_seed_words"):
        data["decision"].pop(gate, None)  # score: decision.score
    # and its generator and seed then: issue 21 gave the demo a new prompt, length and seed
    # (a new job); the demo of before is rebuilt from what it was
    data["seed"] = 7
    data["roles"]["generator"] = {"template": "tinystories/generator@1",
                                  "sampling": {"temperature": 0.8, "top_p": 0.95, "max_tokens": 256}}
    # and its execution then: the oldest fingerprints included execution settings, and the
    # demo's engines and batch size changed later, for speed (issue 13)
    data["execution"] = {"executor": "ray", "engines": "auto", "threads_per_engine": 1, "batch_size": 6}
    spec = parse_job(data, base_dir=str(REPO / "jobs"))
    assert {"ed1969e9c33dc075", "fcb6797c62c34e4d"} <= set(spec.legacy_fingerprints())
    # A gate moved off its default is a new job: no legacy fingerprint of the old rule matches it.
    data["decision"]["min_likelihood"] = -3.0
    changed = parse_job(data, base_dir=str(REPO / "jobs"))
    assert "fcb6797c62c34e4d" not in changed.legacy_fingerprints() + [changed.fingerprint]
