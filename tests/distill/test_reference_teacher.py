"""The scripted reference teacher (issue 12, item 2): `backend: reference` writes the math
recipe's long and short solutions and TinyGSM programs from the built-in generator's worked
steps. They must be right (the verifier and the sandbox say so), the generator's problems
must not change to expose the steps, and wherever its rows appear (lineage, stats, the
dataset card, `factory runs`) they say they are scripted."""
from __future__ import annotations

import hashlib

import duckdb
import pytest
import yaml

from support import fake_job, query
from factory.backends import Request
from factory.backends.reference import (MODEL, ReferenceBackend, UnknownProblem, long_solution, program,
                                        role_and_question, short_solution)
from factory.cli import main
from factory.distill.compare import runs_table, verdict
from factory.export import dataset_card
from factory.pipeline import run_job
from factory.recipes.math_problems import FAMILIES, MAX_STEPS, generate_problem
from factory.render import stats_tables
from factory.sandbox import run_program
from factory.spec import JobError, ModelRef, parse_job
from factory.verify.verifier import canonical_number, verify
from roles.answers import answers_match, extract_final_answer
from roles.templates import load_template
from stores.export_rows import lineage
from stores.stats import job_stats

LOOSE = {"accept_mean": 0, "max_spread": 10, "reject_mean": 0}  # every verified problem is accepted
REFERENCE = {"backend": "reference", "model": MODEL}
SOLVERS = ("generator", "long_solver", "short_solver")


def _digest_of_problems() -> str:
    h = hashlib.sha256()
    for seed in (0, 1, 7, 1000):
        for i in range(250):
            p = generate_problem(seed, i)
            h.update(repr((p.question, p.answer, p.family, p.steps, p.solution)).encode())
    for fam in FAMILIES:
        for s in range(1, MAX_STEPS[fam] + 1):
            for i in range(20):
                p = generate_problem(3, i, family=fam, steps=s)
                h.update(repr((p.question, p.answer, p.family, p.steps, p.solution)).encode())
    return h.hexdigest()


def test_exposing_the_steps_changed_no_problem():
    # Computed before MathProblem.worked existed: the same questions, answers and lines for
    # 1,000 drawn problems and 20 of every (family, steps).
    assert _digest_of_problems() == "b677e50eaf8f58fd4afc1a4a55941bdfab37a19d5445929c5531596a74f83b3f"


def test_worked_steps_chain_to_the_answer():
    for i in range(300):
        p = generate_problem(21, i)
        assert len(p.worked) == p.steps == len(p.solution)
        assert p.worked[-1].result == p.answer and p.question.endswith(p.asks)
        for k, s in enumerate(p.worked):
            assert p.solution[k] == f"{s.a} {s.op} {s.b} = {s.result}"
            for value, source in ((s.a, s.a_from), (s.b, s.b_from)):
                assert source is None or (source < k and p.worked[source].result == value)
        # Every result but the last is used later: the steps are one computation (two parallel
        # products, as in "5 at $2 and 3 at $4", meet in a later step).
        used = {src for s in p.worked for src in (s.a_from, s.b_from) if src is not None}
        assert used == set(range(p.steps - 1)), p.worked


def test_long_and_short_solutions_are_verified_on_500_problems():
    problems = [generate_problem(11, i) for i in range(500)]
    assert {p.steps for p in problems} == {1, 2, 3, 4}
    for p in problems:
        long, short = long_solution(p), short_solution(p)
        la, sa = extract_final_answer(long), extract_final_answer(short)
        v = verify([p.answer], p.answer, la, sa)
        assert v.verified and answers_match(la, p.answer) and answers_match(sa, p.answer), (p.question, long)
        # The long one explains every step and ends with a check that lands on a given number.
        assert all(f"Step {k + 1}:" in long for k in range(p.steps))
        assert "Check: working backwards" in long and "which is the" in long and "NOT" not in long
        assert short.splitlines()[:-1] == list(p.solution)


def test_programs_run_in_the_sandbox_and_return_the_answer():
    problems = [generate_problem(12, i) for i in range(50)]  # ~50 ms a sandbox run
    for p in problems:
        result = run_program(program(p))
        assert result.status == "ok", (result.reason, program(p))
        assert answers_match(canonical_number(result.value), p.answer), (result.value, p.answer, program(p))


def _request(role_template: str, question: str) -> Request:
    messages = load_template(role_template).render(question=question)
    return Request(key="k", messages=messages, sampling={"max_tokens": 10}, seed=0)


def test_requests_are_matched_to_their_role_and_unknown_questions_refused():
    p = generate_problem(13, 0)
    for role, template in (("long_solver", "math/long_cot@1"), ("short_solver", "math/short_cot@1"),
                           ("generator", "math/program@1")):
        assert role_and_question(_request(template, p.question).messages) == (role, p.question)
    reviewer = load_template("math/reviewer@1").render(question=p.question, reference_answer=p.answer)
    assert role_and_question(reviewer) is None
    backend = ReferenceBackend(ModelRef(**REFERENCE))
    with pytest.raises(UnknownProblem, match="no registered built-in problem"):
        backend.generate([_request("math/long_cot@1", "A question no recipe registered?")])


def math_job(db, num_samples=6, **options) -> dict:
    roles = {r: {"backend": "fake", "model": "fake"} for r in ("reviewer", "adjudicator")}
    roles |= {r: dict(REFERENCE) for r in SOLVERS}
    return fake_job(name="reference", recipe="math", num_samples=num_samples, db=str(db), decision=LOOSE,
                    options={"source": "builtin", "max_steps": 2, "programs": 1, **options}, roles=roles)


def test_a_math_job_on_the_reference_teacher_verifies_and_says_it_is_scripted(tmp_path):
    db = tmp_path / "ref.duckdb"
    spec = parse_job(math_job(db))
    result = run_job(spec, db=db)
    job = result.job
    solutions = query(db, f"SELECT kind, correct, json_extract_string(model, '$.backend') FROM solutions "
                          f"WHERE job = '{job}'")
    assert sorted(k for k, _, _ in solutions) == sorted(["program", "long", "short"] * 6)
    assert all(correct and backend == "reference" for _, correct, backend in solutions)
    assert query(db, f"SELECT count(*) FILTER (verified), count(*) FROM verifications WHERE job = '{job}'") == [(6, 6)]
    assert query(db, f"SELECT count(*) FROM verdicts WHERE job = '{job}' AND decision = 'accept'") == [(6,)]
    con = duckdb.connect(str(db), read_only=True)
    try:
        stats, lin = job_stats(con, job), lineage(con, job)
    finally:
        con.close()
    assert stats["scripted_teacher"] == ["generator", "long_solver", "short_solver"]
    assert any(m["backend"] == "reference" and m["model"] == MODEL and m["scripted"] for m in lin["models"])
    card = dataset_card(stats, lin, 6, "jsonl", ["question"])
    assert "written by the scripted reference teacher" in card and "generator, long_solver, short_solver" in card
    assert "scripted reference teacher" in stats_tables(stats)[0].caption
    # A model-made job says nothing of the kind.
    plain = parse_job({**math_job(tmp_path / "plain.duckdb"),
                       "roles": {r: {"backend": "fake", "model": "fake"} for r in (*SOLVERS, "reviewer")}})
    other = run_job(plain, db=tmp_path / "plain.duckdb")
    con = duckdb.connect(str(tmp_path / "plain.duckdb"), read_only=True)
    try:
        plain_stats = job_stats(con, other.job)
    finally:
        con.close()
    assert plain_stats["scripted_teacher"] == [] and "scripted" not in dataset_card(plain_stats, {"models": [],
                                                                                                "templates": [],
                                                                                                "spec": {}}, 0, "jsonl")


def test_programs_0_skips_the_sandbox_and_checks_solutions_against_the_ground_truth(tmp_path):
    # issue 22: tens of thousands of problems for a student; the sandbox was ~80% of a problem's time
    db = tmp_path / "p0.duckdb"
    result = run_job(parse_job(math_job(db, programs=0, num_samples=8)), db=db)
    job = result.job
    assert sorted(k for k, in query(db, f"SELECT kind FROM solutions WHERE job = '{job}'")) == ["long"] * 8 + ["short"] * 8
    assert query(db, f"SELECT count(*) FILTER (correct), count(*) FROM solutions WHERE job = '{job}'") == [(16, 16)]
    assert query(db, f"SELECT DISTINCT verified, reference_source, programs, reason FROM verifications "
                     f"WHERE job = '{job}'") == [(True, "ground_truth", 0, "ground truth, no programs asked for")]
    assert query(db, f"SELECT count(*) FROM verdicts WHERE job = '{job}' AND decision = 'accept'") == [(8,)]


def test_programs_0_needs_a_ground_truth():
    with pytest.raises(JobError, match="programs 0 needs a ground truth"):
        parse_job(math_job("x.duckdb", programs=0, source="generated"))


@pytest.mark.parametrize("change, says", [
    ({"options": {"source": "file", "seed_file": "problems.jsonl"}}, "needs options.source: builtin"),
    ({"roles": {"reviewer": REFERENCE}}, "serves only the math recipe's roles"),
    ({"roles": {"long_solver": {**REFERENCE, "template": "math/short_cot@1"}}}, "writes for the template"),
    ({"roles": {"long_solver": {"backend": "reference", "model": "gpt-5"}}}, "has one model"),
])
def test_a_job_the_reference_teacher_cannot_serve_exits_2_with_nothing_written(tmp_path, capsys, change, says):
    (tmp_path / "problems.jsonl").write_text('{"question": "What is 2 + 3?", "answer": "2 + 3 = 5\\n#### 5"}\n')
    job = math_job(tmp_path / "out.duckdb")
    for key, value in change.items():
        job[key] = {**job[key], **value} if key == "roles" else value
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    assert main(["run", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out.duckdb").exists()
    with pytest.raises(JobError, match=says):
        parse_job(job, base_dir=str(tmp_path))


def test_a_non_math_recipe_cannot_name_it():
    with pytest.raises(JobError, match="serves only the math recipe's roles"):
        parse_job(fake_job(roles={"generator": {**REFERENCE, "template": "tinystories/generator@1"}}))


def _run(mixture, value, scripted=None):
    r = {"distill": "d", "mixture": mixture, "metric": "accuracy", "value": value, "ci_low": value - 0.1,
         "ci_high": value + 0.1, "metrics": {"n": 50, "mean_output_tokens": 40.0}, "rows": 10,
         "training": {"steps": 5}, "student": {"kind": "tiny", "parameters": 3_300_000}}
    return r | ({"scripted_teacher": scripted} if scripted is not None else {})


def test_factory_runs_says_when_the_rows_were_scripted():
    scripted = [_run("long", 0.2, ["long_solver", "short_solver"]), _run("short", 0.5, ["long_solver", "short_solver"])]
    line = verdict(scripted)
    assert line.startswith("not enough seeds to call") and "short leads" in line  # one run each: no call
    assert "scripted reference teacher (long_solver, short_solver)" in line
    assert "scripted reference teacher" in runs_table("d", scripted).caption
    plain = [_run("long", 0.2), _run("short", 0.5, [])]
    assert "scripted" not in verdict(plain) and runs_table("d", plain).caption is None
