"""Token accounting is one GROUP BY role over the rows' own role column (stores/tokens.py):
a recipe's new role is counted with no edit, and every model call the fake backend served
is counted exactly once (an unparseable adjudication is a drop row and a verdict row with
the same lineage; a preference candidate's drop carries none)."""
from __future__ import annotations

import fakes
from support import fake_job, query

from factory.pipeline import run_job
from factory.spec import parse_job
from stores import Store
from stores.stats import tokens_per_role

TABLES = ("samples", "reviews", "verdicts", "solutions")


def calls_in_rows(db) -> dict[str, tuple[str, int, int]]:
    """request_key -> (role, prompt tokens, completion tokens), read row by row: a drop whose
    request key is already on a kept row is that row's call, not another one."""
    calls = {}
    for table in (*TABLES, "drops"):
        for role, key, prompt, completion in query(
                db, f"SELECT role, request_key, prompt_tokens, completion_tokens FROM {table} "
                    "WHERE request_key IS NOT NULL"):
            if table != "drops":
                assert key not in calls, f"two {table} rows for one call {key}"
            calls.setdefault(key, (role, prompt, completion))
    return calls


def check_against_served_calls(db, fingerprint: str) -> dict:
    """tokens_per_role against the fake's own record of what it served, and tokens_spent
    (what budgets count) against tokens_per_role; returns tokens_per_role."""
    with Store(db) as store:
        per_role, spent = tokens_per_role(store.con, fingerprint), store.tokens_spent(fingerprint)
    served = {r.key: r for r in fakes.CALLS}
    assert len(served) == len(fakes.CALLS)  # a fresh database: no request twice, no cache hit
    rows = calls_in_rows(db)
    assert set(rows) == set(served)
    expected: dict[str, dict] = {}
    for key, (role, prompt, completion) in rows.items():
        e = expected.setdefault(role, {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0})
        e["calls"] += 1
        e["prompt_tokens"] += len(str(served[key].messages)) // 4  # what the fake bills for a prompt
        e["completion_tokens"] += completion
    assert {role: {k: v for k, v in t.items() if k != "completion_tokens_per_second"}
            for role, t in per_role.items()} == expected
    assert spent == {role: t["prompt_tokens"] + t["completion_tokens"] for role, t in per_role.items()}
    return per_role


def test_preference_roles_are_counted_by_their_own_name(tmp_path):
    roles = ("prompt_writer", "generator", "reviewer")
    spec = parse_job(fake_job(recipe="preference", num_samples=10, reviewers=2,
                              options={"candidates": 3, "min_margin": 0.5},
                              roles={r: {"backend": "fake", "model": "fake"} for r in roles}))
    db = tmp_path / "p.duckdb"
    run_job(spec, db=db)
    per_role = check_against_served_calls(db, spec.fingerprint)
    assert set(per_role) == set(roles)
    # The prompt writer's calls are the samples (the prompts), the generator's the candidates.
    assert per_role["prompt_writer"]["calls"] == query(db, "SELECT count(*) FROM samples")[0][0] == 10
    assert per_role["generator"]["calls"] == query(db, "SELECT count(*) FROM solutions")[0][0] == 30
    for role, table in (("prompt_writer", "samples"), ("generator", "solutions")):
        assert per_role[role]["completion_tokens"] == query(db, f"SELECT sum(completion_tokens) FROM {table}")[0][0]
    reviewer_rows = query(db, "SELECT (SELECT count(*) FROM reviews) + (SELECT count(*) FROM drops "
                              "WHERE role = 'reviewer' AND request_key IS NOT NULL)")[0][0]
    usable = query(db, "SELECT count(*) FROM solutions WHERE status = 'ok'")[0][0]
    assert per_role["reviewer"]["calls"] == reviewer_rows == 2 * usable  # 2 reviewers per usable candidate


def test_an_unparseable_adjudication_is_counted_once(tmp_path):
    job = fake_job(num_samples=12)
    job["roles"]["adjudicator"]["model"] = "fake-garbage"  # prose where JSON is asked: every verdict a drop
    spec = parse_job(job)
    db = tmp_path / "t.duckdb"
    run_job(spec, db=db)
    per_role = check_against_served_calls(db, spec.fingerprint)
    drops = query(db, "SELECT count(*) FROM drops WHERE role = 'adjudicator'")[0][0]
    verdicts = query(db, "SELECT count(*) FROM verdicts WHERE stage = 'adjudicator' AND decision = 'drop'")[0][0]
    assert drops == verdicts == per_role["adjudicator"]["calls"] > 0
