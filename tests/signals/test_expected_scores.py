"""Logprob-weighted review scores (G-Eval, decision.review_score: expected) on the fake
backend, whose expected_scores gives each written score a known distribution
(fakes.EXPECTED_SHAPE); the load-time refusal for a backend without token probabilities;
one real-model check."""
from __future__ import annotations

import json

import pytest
import yaml

import factory
import fakes
from support import fake_job, query, run_job_yaml
from factory.backends import base
from factory.cli import main
from factory.decide import decide
from factory.spec import JobError, parse_job


@pytest.fixture
def fake_expects(monkeypatch):
    """The fake backend declared able to give token probabilities, for one test."""
    monkeypatch.setattr(base, "EXPECTED_SCORE_BACKENDS", base.EXPECTED_SCORE_BACKENDS | {"fake"})
    from factory.steps import review

    monkeypatch.setattr(review, "EXPECTED_SCORE_BACKENDS", base.EXPECTED_SCORE_BACKENDS)
    fakes.EXPECTED.clear()


def by_hand(written: int) -> float:
    """The expectation of EXPECTED_SHAPE around `written` on the 1..10 scale."""
    mass = {written + k: p for k, p in fakes.EXPECTED_SHAPE.items() if 1 <= written + k <= 10}
    return sum(v * p for v, p in mass.items()) / sum(mass.values())


def test_expected_value_of_a_distribution():
    assert base.expected_value({7: 0.25, 8: 0.75}) == pytest.approx(7.75)
    assert base.expected_value({"1": 1.0, "10": 1.0}) == pytest.approx(5.5)  # JSON keys, unnormalized
    assert by_hand(7) == pytest.approx(6.9) and by_hand(1) == pytest.approx(0.9 / 0.7)
    with pytest.raises(ValueError):
        base.expected_value({1: 0.0})


def test_expected_scores_stored_per_review_and_the_rule_reads_them(tmp_path, fake_expects):
    job = fake_job(decision={"review_score": "expected"})
    run_job_yaml(tmp_path, job)
    db = tmp_path / "f.duckdb"
    reviews = query(db, """SELECT r.sample_id, r.reviewer_index, r.scores, r.overall, g.value, g.details
                           FROM reviews r JOIN signals g ON g.sample_id = r.sample_id
                            AND g.signal = 'expected_scores.' || r.reviewer_index ORDER BY ALL""")
    assert reviews and len(reviews) == query(db, "SELECT count(*) FROM reviews")[0][0]
    overall_of: dict[str, list[float]] = {}
    for sample, _, scores, overall, value, details in reviews:
        scores, details = json.loads(scores), json.loads(details)
        axes = {a: by_hand(v) for a, v in scores.items()}  # the four integer axes of StoryReview
        assert details["axes"] == pytest.approx(axes, abs=1e-4)
        assert value == pytest.approx(sum(axes.values()) / 4, abs=1e-4)
        assert overall == pytest.approx(value)  # the review's overall is the expected mean
        assert details["sampled"] == scores
        overall_of.setdefault(sample, []).append(overall)
    verdicts = query(db, "SELECT sample_id, decision, reason, mean_score FROM verdicts WHERE stage = 'reviewers'")
    assert verdicts
    for sample, decision, reason, mean in verdicts:
        d = decide(overall_of[sample], 7.0, 1.5, 5.0)
        assert (decision, mean) == (d.outcome, pytest.approx(d.mean)) and reason.endswith("(expected scores)")


def test_sampled_and_expected_decide_differently(tmp_path, fake_expects, monkeypatch):
    # Every written score of 4 or more is believed 2.7 lower: fewer stories pass.
    monkeypatch.setattr(fakes, "EXPECTED_SHAPE", {-3: 0.9, 0: 0.1})
    run_job_yaml(tmp_path, fake_job(), "sampled.duckdb")
    assert fakes.EXPECTED == []  # sampled (the default): no forward pass is paid for
    assert query(tmp_path / "sampled.duckdb", "SELECT count(*) FROM signals WHERE role = 'expected_scores'") \
        == [(0,)]
    run_job_yaml(tmp_path, fake_job(decision={"review_score": "expected"}), "expected.duckdb")
    sql = "SELECT count(*) FILTER (decision = 'accept') FROM verdicts"
    sampled, expected = (query(tmp_path / f"{name}.duckdb", sql)[0][0] for name in ("sampled", "expected"))
    assert sampled > 0 and expected < sampled


def test_expected_scores_are_cached_by_request(tmp_path, fake_expects):
    run_job_yaml(tmp_path, fake_job(decision={"review_score": "expected"}))
    asked = len(fakes.EXPECTED)
    assert asked == query(tmp_path / "f.duckdb", "SELECT count(*) FROM reviews")[0][0]
    # Another job (another fingerprint) making the same review requests: read back, not computed.
    run_job_yaml(tmp_path, fake_job(name="again", decision={"review_score": "expected", "accept_mean": 6.5}))
    assert len(fakes.EXPECTED) == asked


def test_a_backend_without_token_probabilities_is_refused_at_load(tmp_path, capsys):
    job = fake_job(decision={"review_score": "expected"})
    with pytest.raises(JobError, match="backend fake cannot give the token probabilities .* llamacpp reviewer"):
        parse_job(job, "job.yaml")
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    assert main(["run", str(path), "--db", str(tmp_path / "f.duckdb")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "decision.review_score" in err and "backend fake" in err
    assert not (tmp_path / "f.duckdb").exists()
    parse_job(fake_job(), "job.yaml")  # sampled: nothing is asked of the backend


def test_default_leaves_the_fingerprint_as_it_was(fake_spec):
    spec = fake_spec()
    assert "review_score" not in spec.canonical()["decision"]
    assert fake_spec(decision={"review_score": "sampled"}).fingerprint == spec.fingerprint


@pytest.mark.model
def test_expected_scores_on_the_embedded_model():
    from factory.backends.base import Request
    from factory.backends.llamacpp import LlamaCppBackend
    from roles.base import schema_of
    from roles.reviewer import StoryReview, integer_axes

    backend = LlamaCppBackend("smollm2-135m-instruct-q4_1")
    messages = ({"role": "user", "content": "Rate this story from 1 to 10 on grammar, creativity, consistency and "
                 "plot, with an age group and a critique, in JSON. Story: Tom had a red ball. He threw it to his "
                 "dog. The dog ran fast and brought it back. Tom laughed."},)
    # Greedy: the written value is the model's first choice among the allowed values at that point.
    sampling = {"temperature": 0.0, "top_p": 1.0, "top_k": 40, "max_tokens": 120, "repeat_penalty": 1.0}
    completion = backend.generate([Request("k", messages, sampling, 1, schema_of(StoryReview))])[0]
    written = json.loads(completion.text)
    fields = integer_axes(StoryReview)
    dists = backend.expected_scores([(messages, completion.text)], fields)[0]
    assert set(dists) == set(fields)
    for axis, dist in dists.items():
        assert sum(dist.values()) == pytest.approx(1.0)
        assert 1.0 <= base.expected_value(dist) <= 10.0
        # The text is re-tokenized canonically, not along the grammar's sampled token path
        # (docs/scores.md), so the written value is among the top three, not always first.
        ranked = sorted(dist, key=dist.get, reverse=True)
        assert written[axis] in ranked[:3] and dist[written[axis]] >= 0.05, (axis, written[axis], dist)


def test_probe_reports_the_expected_signal(tmp_path, fake_expects):
    job = fake_job(decision={"review_score": "expected"}, num_samples=24)
    path, db, _ = run_job_yaml(tmp_path, job)
    out = factory.probe(str(path), db=db, samples=3)
    assert {"reviewers.overall_expected", "reviewers.overall_sampled", "reviewers.plot_expected"} <= set(out["by_signal"])
