"""The reference teacher's `wrong_rate` (issue 22, item 4): on a seeded share of problems its
long and short solutions carry one arithmetic slip, propagated to the final answer; lineage
says so; the verifier catches every slipped solution and passes every other one. Bad input
(a rate outside [0, 1], a non-solver role, a model backend) is one line, exit 2."""
from __future__ import annotations

import json
import math
import re
from fractions import Fraction

import duckdb
import pytest
import yaml

from support import query
from factory.backends import Request
from factory.backends.reference import MODEL, ReferenceBackend, remember
from factory.backends.reference_slip import slips
from factory.cli import main
from factory.pipeline import run_job
from factory.recipes.math_problems import FAMILIES, MAX_STEPS, generate_problem
from factory.spec import ModelRef, parse_job
from factory.verify.verifier import verify
from roles.answers import answers_match, extract_final_answer
from roles.templates import load_template
from stores.export_rows import lineage
from .test_reference_teacher import REFERENCE, math_job

SEED, N = 11, 500
EQUATION = re.compile(r"^(\S+) ([-+*/]) (\S+) = (\S+)$")
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}


def _solve(rate: float) -> list[tuple]:
    """(problem, long text, short text) for N registered problems, through the backend."""
    # family and steps given, as the math recipe does (the registry regenerates them so): every
    # family at every step count it has, in turn
    shapes = [(f, s) for f in FAMILIES for s in range(1, MAX_STEPS[f] + 1)]
    problems = [generate_problem(SEED, i, *shapes[i % len(shapes)]) for i in range(N)]
    for i, p in enumerate(problems):
        remember(p.question, SEED, i, p.family, p.steps)
    backend = ReferenceBackend(ModelRef(backend="reference", model=MODEL, wrong_rate=rate))
    out = []
    for p in problems:
        long, short = backend.generate([_request("math/long_cot@1", p.question), _request("math/short_cot@1", p.question)])
        out.append((p, long.text, short.text))
    return out


def _request(template: str, question: str) -> Request:
    return Request(key="k", messages=load_template(template).render(question=question), sampling={}, seed=0)


def _wrong_equations(short: str) -> int:
    """How many 'a op b = c' lines of a short solution are arithmetically false."""
    wrong = 0
    for line in short.splitlines()[:-1]:
        a, op, b, c = EQUATION.match(line).groups()
        wrong += OPS[op](Fraction(a), Fraction(b)) != Fraction(c)
    return wrong


@pytest.mark.parametrize("rate", [0.3, 0.05])
def test_the_wrong_share_is_the_rate_and_the_verifier_catches_every_slip(rate):
    wrong = 0
    for i, (p, long, short) in enumerate(_solve(rate)):
        la, sa = extract_final_answer(long), extract_final_answer(short)
        v = verify([p.answer], p.answer, la, sa)
        slipped = not answers_match(la, p.answer)
        wrong += slipped
        # long and short slip together, at the same problems the seeded draw names, to the same answer
        assert slipped == (not answers_match(sa, p.answer)) == slips(rate, SEED, i), (p.question, long)
        if slipped:
            # the verifier's per-solution verdicts (the problem itself stays verified by its program)
            assert v.long_correct is False and v.short_correct is False and la == sa, (v, p.question, short)
            # one step's arithmetic is off and every later step is right given it: a plausible slip
            assert _wrong_equations(short) == 1, short
            # the long solution walks the same numbers and its check does not give itself away
            assert all(line in long for line in short.splitlines()[:-1]) and "NOT" not in long, long
        else:
            assert v.verified and v.long_correct and v.short_correct and _wrong_equations(short) == 0, (v, p.question)
    # within binomial noise: |k - n p| <= 3.29 sigma (a two-sided 0.1% band) at N = 500
    sigma = math.sqrt(N * rate * (1 - rate))
    assert abs(wrong - N * rate) <= 3.29 * sigma, (wrong, N * rate, sigma)


def test_rate_0_is_never_wrong_and_rate_1_always():
    assert all(extract_final_answer(long) == p.answer == extract_final_answer(short)
               for p, long, short in _solve(0.0)[:100])
    assert not any(answers_match(extract_final_answer(long), p.answer) or answers_match(extract_final_answer(short),
                                                                                          p.answer)
                   for p, long, short in _solve(1.0)[:100])


def test_the_slipped_problems_nest_across_rates():
    # a problem wrong at 0.2 is wrong at 0.3: two rates compare on shared problems
    low = {i for i in range(N) if slips(0.2, SEED, i)}
    high = {i for i in range(N) if slips(0.3, SEED, i)}
    assert low < high


def test_a_job_with_wrong_rate_records_it_in_lineage_and_the_verifier_rejects_the_slips(tmp_path):
    db = tmp_path / "w.duckdb"
    job = math_job(db, num_samples=20)
    job["roles"] = {**job["roles"], "long_solver": {**REFERENCE, "wrong_rate": 0.5},
                    "short_solver": {**REFERENCE, "wrong_rate": 0.5}}
    spec = parse_job(job)
    result = run_job(spec, db=db)
    models = query(db, f"SELECT kind, model FROM solutions WHERE job = '{result.job}'")
    rates = {kind: json.loads(model).get("wrong_rate") for kind, model in models}
    assert rates == {"long": 0.5, "short": 0.5, "program": None}
    con = duckdb.connect(str(db), read_only=True)
    try:
        lin = lineage(con, result.job)
        sample_index = dict(con.execute(f"SELECT sample_id, seed_index FROM samples WHERE job = '{result.job}'")
                            .fetchall())
        correct = con.execute(f"SELECT sample_id, kind, correct FROM solutions WHERE job = '{result.job}'").fetchall()
    finally:
        con.close()
    assert any(m.get("wrong_rate") == 0.5 and m["backend"] == "reference" for m in lin["models"])
    assert lin["spec"]["roles"]["long_solver"]["wrong_rate"] == 0.5
    # the verifier marks exactly the slipped problems' long and short solutions wrong; programs stay right
    for sid, kind, ok in correct:
        assert ok == (kind == "program" or not slips(0.5, spec.seed, sample_index[sid])), (sid, kind)
    assert 0 < sum(ok for _, kind, ok in correct if kind == "short") < 20


def test_wrong_rate_0_keeps_the_fingerprint_and_a_rate_changes_it(tmp_path):
    job = math_job(tmp_path / "x.duckdb")
    plain = parse_job(job)
    zero = parse_job({**job, "roles": {**job["roles"], "long_solver": {**REFERENCE, "wrong_rate": 0}}})
    some = parse_job({**job, "roles": {**job["roles"], "long_solver": {**REFERENCE, "wrong_rate": 0.3}}})
    assert plain.fingerprint == zero.fingerprint != some.fingerprint
    assert "wrong_rate" not in json.dumps(plain.canonical())


@pytest.mark.parametrize("role, value, says", [
    ("long_solver", 1.5, "less than or equal to 1"),
    ("short_solver", -0.1, "greater than or equal to 0"),
    ("generator", 0.3, "wrong_rate is read only on the solver roles"),
])
def test_a_bad_wrong_rate_exits_2_with_nothing_written(tmp_path, capsys, role, value, says):
    job = math_job(tmp_path / "out.duckdb")
    job["roles"] = {**job["roles"], role: {**REFERENCE, "wrong_rate": value}}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    assert main(["run", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and "wrong_rate" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out.duckdb").exists()


def test_wrong_rate_on_a_model_backend_exits_2(tmp_path, capsys):
    job = math_job(tmp_path / "out.duckdb")
    job["roles"] = {**job["roles"], "long_solver": {"backend": "fake", "model": "fake", "wrong_rate": 0.2}}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    assert main(["run", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "wrong_rate is read only by backend reference" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out.duckdb").exists()
