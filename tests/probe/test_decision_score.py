"""decision.score (issue 11): the decision score the rule reads and `factory probe` ranks:
reviewers (default, unchanged), likelihood, likelihood_rules. On the fake backend
(fakes.fake_likelihood: a hash of the text in [-4, -1))."""
import json

import pytest

from support import fake_job, query, run_job_yaml, write_job

import factory
from factory.cli import main
from factory.decide import RULES_WEIGHT, decision_score, rejected_score
from factory.spec import JobError, load_job, parse_job

MINIMUM = -2.5
OPEN = {"accept_mean": 1, "max_spread": 10, "reject_mean": 0.5}  # the reviewers would accept everything


def test_decision_score_values():
    assert decision_score("reviewers", 3.5, -2.0, [1.0]) == 3.5
    assert decision_score("reviewers", None, -2.0, []) is None
    assert decision_score("likelihood", 3.5, -2.0, [0.0]) == -2.0
    assert decision_score("likelihood_rules", 3.5, -2.0, [1.0, 0.5]) == pytest.approx(-2.0 + RULES_WEIGHT * 0.75)
    assert decision_score("likelihood_rules", 3.5, -2.0, []) == -2.0
    assert decision_score("likelihood", 3.5, None, [1.0]) is None
    # a gate-rejected text ranks below anything that passes
    assert rejected_score("reviewers", (1, 10), None) == 0.0
    assert rejected_score("likelihood_rules", (1, 10), MINIMUM) == MINIMUM - 1.0


def test_default_keeps_the_fingerprint_and_likelihood_scores_need_a_minimum():
    demo = load_job("jobs/tinystories-demo.yaml")
    base = parse_job(fake_job())
    same = parse_job(fake_job(decision={"score": "reviewers"}))
    assert same.fingerprint == base.fingerprint and "score" not in same.canonical()["decision"]
    assert demo.decision.score in ("reviewers", "likelihood", "likelihood_rules", "likelihood_zlib")
    other = parse_job(fake_job(decision={"score": "likelihood", "min_likelihood": MINIMUM}))
    assert other.canonical()["decision"]["score"] == "likelihood"
    assert other.fingerprint != parse_job(fake_job(decision={"min_likelihood": MINIMUM})).fingerprint
    with pytest.raises(JobError, match="score: likelihood accepts what passes every gate: set min_likelihood"):
        parse_job(fake_job(decision={"score": "likelihood"}))
    with pytest.raises(JobError, match="decision.score"):
        parse_job(fake_job(decision={"score": "judges"}))


def test_cli_refuses_a_likelihood_score_without_minimum(tmp_path, capsys):
    path, db = write_job(tmp_path, fake_job(decision={"score": "likelihood_rules"})), tmp_path / "x.duckdb"
    code = main(["run", str(path), "--db", str(db), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not db.exists()
    assert len(err.splitlines()) == 1 and "set min_likelihood" in err


def run(tmp_path, **decision):
    path, db, _ = run_job_yaml(tmp_path, fake_job(num_samples=24, decision={**OPEN, **decision}), db="s.duckdb")
    return path, db


def test_likelihood_score_accepts_what_passes_the_gates_and_says_its_score(tmp_path):
    # thresholds no review can reach: under score: reviewers everything reviewed would be rejected
    _, db = run(tmp_path, score="likelihood", min_likelihood=MINIMUM, accept_mean=10, reject_mean=10)
    rows = query(db, """SELECT v.decision, v.stage, v.reason, g.value, v.n_reviews FROM verdicts v
                        LEFT JOIN signals g ON g.sample_id = v.sample_id AND g.signal = 'likelihood'""")
    gated = [r for r in rows if r[1] == "gates"]
    assert gated and all(d == "accept" and value >= MINIMUM for d, _, _, value, _ in gated)
    for _, _, reason, value, n in gated:  # the likelihood is the score; the reviews were made and stored
        assert reason.startswith(f"decision score (likelihood) {value:.3f}: passed every gate") and n == 3
    assert not [r for r in rows if r[1] in ("reviewers", "adjudicator")]
    rejected = {r[1] for r in rows if r[0] == "reject"}
    assert "likelihood" in rejected and rejected <= {"likelihood", "seed_words", "vocabulary", "repetition",
                                                     "truncated", "exact_duplicate"}


def test_probe_ranks_the_likelihood_rules_score(tmp_path):
    path, db = run(tmp_path, score="likelihood_rules", min_likelihood=MINIMUM)
    summary = factory.probe(path, db, samples=8, seed=1)
    items = [(k, t, json.loads(s)) for k, t, s in query(db, "SELECT kind, text, scores FROM probe_items")]
    passing = [(t, s) for _, t, s in items if s["gates"] == 1.0]
    rejected = [s for _, _, s in items if s["gates"] == 0.0]
    assert passing and rejected
    for _, s in passing:
        assert s["decision"] == pytest.approx(s["likelihood"] + RULES_WEIGHT * s["rules"])
    assert all(s["decision"] == MINIMUM - 1.0 for s in rejected)
    assert max(s["decision"] for s in rejected) < min(s["decision"] for _, s in passing)
    assert summary["by_signal"]["decision"]["all"]["pairs"] > 0
    assert json.loads(query(db, "SELECT config FROM probe_runs")[0][0])["decision_rule"]["score"] == "likelihood_rules"


def test_likelihood_zlib_is_the_total_log_likelihood_over_the_zlib_size():
    import math
    import zlib

    from factory.decide import ZLIB_FLOOR, zlib_nats

    text = "Tom ran to the park. He saw a dog."
    assert zlib_nats(text) == pytest.approx(8 * math.log(2) * len(zlib.compress(text.encode(), 9)))
    assert decision_score("likelihood_zlib", 3.5, -2.0, [1.0], text, 10) == pytest.approx(-20.0 / zlib_nats(text))
    assert decision_score("likelihood_zlib", 3.5, -2.0, [1.0], None, 10) is None  # needs the text
    assert decision_score("likelihood_zlib", 3.5, -2.0, [1.0], text, None) is None  # and the token count
    # a repeat zlib sees through costs the ratio what the model saved: same per-token likelihood,
    # twice the tokens, nearly the same zlib size -> twice as negative
    twice = text + " " + text
    assert decision_score("likelihood_zlib", None, -2.0, [], twice, 20) < decision_score(
        "likelihood_zlib", None, -2.0, [], text, 10)
    assert rejected_score("likelihood_zlib", (1, 10), MINIMUM) == ZLIB_FLOOR
