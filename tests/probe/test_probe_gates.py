"""The probe's decision score applies every gate the pipeline applies before review: a text
the likelihood gate (decision.min_likelihood) or the rule gate would reject ranks below
every text that passes, on the fake backend (fakes.fake_likelihood: a hash of the text in
[-4, -1), so about half the corruptions fall below -2.5)."""
import json


from support import fake_job, query, run_job_yaml

import factory
from factory.probing.run import likelihood_gate

MINIMUM = -2.5


def probe(tmp_path, **decision):
    job = fake_job(num_samples=24, decision={"accept_mean": 1, "max_spread": 10, "reject_mean": 0.5, **decision})
    path, db, _ = run_job_yaml(tmp_path, job, db="g.duckdb")
    factory.probe(path, db, samples=8, seed=1)
    return [(kind, json.loads(scores)) for kind, scores in query(db, "SELECT kind, scores FROM probe_items")]


def test_the_likelihood_gate_puts_a_text_below_every_passing_one(tmp_path):
    items = probe(tmp_path, min_likelihood=MINIMUM)
    originals = [s for kind, s in items if kind == "original"]
    assert originals and all(s["likelihood"] >= MINIMUM and s["gates"] == 1.0 for s in originals)
    below = [s for kind, s in items if kind != "original" and s["likelihood"] < MINIMUM]
    passing = [s for kind, s in items if s["gates"] == 1.0]
    assert below and passing
    for s in below:  # rejected before review: below the lowest review score (1), whatever its reviews said
        assert s["likelihood_gate"] == 0.0 and s["gates"] == 0.0 and s["decision"] == 0.0
    for s in passing:  # passing every gate: the reviewers' mean
        assert s["likelihood_gate"] == 1.0 and s["decision"] == s["reviewers.overall"]
    assert max(s["decision"] for s in below) < min(s["decision"] for s in passing)


def test_without_a_minimum_there_is_no_likelihood_gate(tmp_path):
    items = probe(tmp_path)
    assert all("likelihood_gate" not in s for _, s in items)
    # the rule gate alone decides `gates`
    assert all(s["gates"] == s["rule_gate"] for _, s in items)


def test_likelihood_gate_values():
    assert likelihood_gate(None, -9.0) is None and likelihood_gate(-3.0, None) is None
    assert likelihood_gate(-3.0, -3.0) == 1.0 and likelihood_gate(-3.0, -3.01) == 0.0
