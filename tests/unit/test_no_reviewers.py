"""`reviewers: 0`: no model review; what passes the recipe's gates (math: the verifier) is
accepted with stage `gates`. The reference teacher's rows need no model judge, and the
embedded reviewer's grades on them were noise (docs/experiments.md, row b.0)."""
import fakes
import pytest
import yaml

import factory
from support import fake_job, query
from factory.cli import main
from factory.pipeline import run_job
from factory.spec import JobError, parse_job

REFERENCE = {"backend": "reference", "model": "math-worked-steps"}


def test_a_tinystories_job_without_reviewers_accepts_what_passes_the_gates(tmp_path):
    db = tmp_path / "f.duckdb"
    result = run_job(parse_job(fake_job(reviewers=0, num_samples=8)), db=db)
    # only the generator was asked (its requests have no JSON schema; a review's has its rubric's)
    assert len(fakes.CALLS) == 8 and all(r.json_schema is None for r in fakes.CALLS)
    assert query(db, "SELECT count(*) FROM reviews") == [(0,)]
    verdicts = query(db, f"SELECT decision, stage, count(*) FROM verdicts WHERE job = '{result.job}' GROUP BY ALL")
    gated = {(d, s): n for d, s, n in verdicts}
    # every generated story either failed a gate of the recipe or was accepted at stage `gates`
    assert gated.get(("accept", "gates"), 0) >= 1
    assert all(s != "reviewers" and s != "adjudicator" for _, s in gated)
    assert sum(gated.values()) == query(db, f"SELECT count(*) FROM samples WHERE job = '{result.job}'")[0][0]
    stats = factory.stats(db, result.job)
    assert stats["funnel"]["accepted"] == gated[("accept", "gates")]


def test_math_on_the_reference_teacher_without_reviewers_accepts_every_verified_problem(tmp_path):
    db = tmp_path / "m.duckdb"
    roles = {r: dict(REFERENCE) for r in ("generator", "long_solver", "short_solver")}
    roles |= {r: {"backend": "fake", "model": "fake"} for r in ("reviewer", "adjudicator")}
    job = fake_job(name="ref0", recipe="math", num_samples=10, reviewers=0, db=str(db), roles=roles,
                   options={"source": "builtin", "max_steps": 2, "programs": 1})
    result = run_job(parse_job(job), db=db)
    assert query(db, f"SELECT count(*) FILTER (verified), count(*) FROM verifications WHERE job = '{result.job}'") \
        == [(10, 10)]
    assert query(db, f"SELECT decision, stage, count(*) FROM verdicts WHERE job = '{result.job}' GROUP BY ALL") \
        == [("accept", "gates", 10)]
    assert fakes.CALLS == []  # the fake reviewer and adjudicator were never asked


def test_a_recipe_that_needs_reviews_refuses_zero_reviewers():
    with pytest.raises(JobError, match=r"reviewers: recipe preference needs at least 1 \(got 0\)"):
        parse_job(fake_job(recipe="preference", reviewers=0,
                           roles={"generator": {"backend": "fake", "model": "fake"},
                                  "reviewer": {"backend": "fake", "model": "fake"}}))


def test_expected_scores_need_reviews(tmp_path, capsys):
    job = fake_job(reviewers=0, decision={"review_score": "expected"})
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    assert main(["run", str(path), "--db", str(tmp_path / "x.duckdb"), "--quiet"]) == 2
    assert "decision.review_score: expected reads the reviews; with reviewers: 0 there are none" in \
        capsys.readouterr().err
    assert not (tmp_path / "x.duckdb").exists()
