"""A model per role, GRA's reviewer pool, and hard token budgets (fake backend)."""
import re

import pytest

from support import fake_job, query
from factory.calls import BudgetExceeded
from factory.pipeline import run_job
from factory.spec import parse_job


q = query


def pool_job(**kw):
    job = fake_job(**kw)
    job["roles"]["generator"]["model"] = "fake-a"
    job["roles"]["reviewer"].update(pool=[{"backend": "fake", "model": m} for m in ("fake-a", "fake-b", "fake-c")],
                                    exclude_generator_model=True)
    return parse_job(job)


def test_reviewer_pool_never_lets_the_author_review_and_lineage_says_who(tmp_path):
    db = tmp_path / "p.duckdb"
    run_job(pool_job(num_samples=20), db=db)
    authors = {m for (m,) in q(db, "SELECT DISTINCT model->>'model' FROM samples")}
    reviewers = {m for (m,) in q(db, "SELECT DISTINCT model->>'model' FROM reviews")}
    assert authors == {"fake-a"} and reviewers == {"fake-b", "fake-c"}


def test_each_role_can_have_its_own_model(tmp_path):
    job = fake_job()
    job["roles"]["reviewer"]["model"] = "fake-judge"
    db = tmp_path / "m.duckdb"
    run_job(parse_job(job), db=db)
    assert q(db, "SELECT DISTINCT model->>'model' FROM reviews") == [("fake-judge",)]
    assert q(db, "SELECT DISTINCT model->>'model' FROM samples") == [("fake",)]


def test_budget_stops_the_job_and_a_higher_cap_resumes_it(tmp_path):
    reference, db = tmp_path / "ref.duckdb", tmp_path / "b.duckdb"
    run_job(parse_job(fake_job(num_samples=16)), db=reference)
    capped = parse_job(fake_job(num_samples=16, max_tokens_budget=8000))
    with pytest.raises(BudgetExceeded, match=r"job token budget reached: [\d,]+ of 8,000 tokens spent; the next request "
                                             r"needs up to [\d,]+$"):
        run_job(capped, db=db)
    done = q(db, "SELECT count(*) FROM done_seeds")[0][0]
    assert 0 < done < 16
    # a hard cap: everything generated (the completions cache) fits in it
    assert q(db, "SELECT sum(prompt_tokens + completion_tokens) FROM completions")[0][0] <= 8000
    # the same job (budgets are not in the fingerprint), a higher cap: it resumes and finishes
    assert capped.fingerprint == parse_job(fake_job(num_samples=16, max_tokens_budget=10**9)).fingerprint
    run_job(parse_job(fake_job(num_samples=16, max_tokens_budget=10**9)), db=db)
    sql = "SELECT sample_id, text FROM samples ORDER BY 1"
    assert q(db, sql) == q(reference, sql)
    sql = "SELECT sample_id, decision, stage FROM verdicts ORDER BY 1"
    assert q(db, sql) == q(reference, sql)


def test_role_budget_names_the_role(tmp_path):
    job = fake_job(num_samples=16)
    job["roles"]["reviewer"]["max_tokens_budget"] = 500
    with pytest.raises(BudgetExceeded, match="token budget of role reviewer reached") as stopped:
        run_job(parse_job(job), db=tmp_path / "r.duckdb")
    spent, cap = re.search(r"reached: ([\d,]+) of ([\d,]+) tokens spent", str(stopped.value)).groups()
    assert int(spent.replace(",", "")) <= int(cap.replace(",", "")) == 500


def test_a_model_that_does_not_fit_names_the_role_and_the_engine_error(tmp_path):
    from factory.calls import RoleFailed

    job = fake_job(num_samples=2)
    job["roles"]["reviewer"]["model"] = "fake-too-big"
    with pytest.raises(RoleFailed, match=r"^role reviewer on fake:fake-too-big: out of memory: the model needs 16.0 GiB"):
        run_job(parse_job(job), db=tmp_path / "big.duckdb")


def test_a_batching_engine_gets_a_role_batch_in_one_call(tmp_path, monkeypatch):
    """vLLM-style backends (registered batching=True) receive many requests per call, so
    continuous batching works; the fake stands in for the engine here."""
    import fakes
    from factory import backends
    from factory.backends import register

    monkeypatch.setattr(backends, "_REGISTRY", dict(backends._REGISTRY))  # the test's entry goes away after

    sizes = []

    class Batching(fakes.FakeBackend):
        def generate(self, requests):
            sizes.append(len(requests))
            return super().generate(requests)

    register("fake-batching", fakes.fake_identity, lambda ref, threads=1: Batching(ref.model), batching=True)
    job = fake_job(num_samples=8, execution={"executor": "local", "batch_size": 8})
    for role in job["roles"].values():
        role["backend"] = "fake-batching"
    run_job(parse_job(job), db=tmp_path / "b.duckdb")
    # the generator stage: all 8 seeds in one call; the reviewer stage: 3 per reviewed sample
    assert sizes[0] == 8 and max(sizes) > 8 and max(sizes) % 3 == 0
