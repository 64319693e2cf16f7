"""A solver completion of the wrong shape is a drop with its reason, never a verified answer
(issue 23 I): {"story": 7, "answer": [1, 2]} was graded correct because a number pulled out
of the JSON matched the ground truth."""
import json

import pytest

import fakes
from support import fake_job, query
from factory.pipeline import run_job
from factory.spec import parse_job
from roles.base import Drop
from roles.math import Solution, Solver


def parse(text: str):
    return Solver("math/long_cot@1", "long_solver").parse({}, text)


@pytest.mark.parametrize("text, why", [
    ('{"story": 7, "answer": [1, 2]}', "answer field must be a number or a numeric string, got a list"),
    ('{"answer": {"value": 12}}', "got a dict"),
    ('{"answer": "twelve"}', 'got a string: "twelve"'),
    ('{"answer": true}', "got true"),
    ('{"answer": null}', "got a null"),
    ('{"answer": 1e999}', "not a finite number"),
    ('{"story": 12, "grammar": 7}', "no answer field (keys: 'grammar', 'story')"),
    ("[12, 12]", "a JSON array"),
])
def test_json_of_the_wrong_shape_is_a_drop_with_its_reason(text, why):
    parsed = parse(text)
    assert isinstance(parsed, Drop) and why in parsed.reason, parsed
    assert parsed.raw == text


@pytest.mark.parametrize("text, answer", [
    ('{"answer": 12}', "12"),
    ('{"answer": 2.5, "steps": "5 / 2"}', "2.5"),
    ('{"answer": " $1,200 "}', "$1,200"),
    ('{"answer": "3/4"}', "3/4"),
    ("We add 5 and 7.\nFinal answer: 12", "12"),  # prose: extracted as before
    ("12", "12"),  # a bare JSON number is prose to the solver too
])
def test_a_number_in_the_answer_field_or_prose_is_an_answer(text, answer):
    parsed = parse(text)
    assert isinstance(parsed, Solution) and parsed.answer == answer, parsed


def test_a_wrong_shape_solution_is_never_graded_correct(tmp_path, monkeypatch):
    lines = [json.dumps({"question": f"Tom has {a} pens and gets {b} more. How many pens?",
                         "answer": f"{a}+{b}\n#### {a + b}"}) for a, b in [(3, 4), (10, 5)]]
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("\n".join(lines) + "\n")
    roles = ("problem_writer", "generator", "long_solver", "short_solver", "reviewer", "adjudicator")
    spec = parse_job(fake_job(recipe="math", math={"source": "file", "seed_file": str(seeds), "programs": 2},
                              roles={r: {"backend": "fake", "model": "fake"} for r in roles}))
    real = fakes.FakeBackend._answer

    def wrong_shape(self, request):  # each solver answers JSON whose last number is the true answer
        prompt = request.messages[-1]["content"]
        if "Final answer" in prompt and "def simple_math_problem" not in prompt:
            return json.dumps({"story": 7, "answer": [1, self._sum(prompt)]})
        return real(self, request)

    monkeypatch.setattr(fakes.FakeBackend, "_answer", wrong_shape)
    db = tmp_path / "m.duckdb"
    run_job(spec, db=db)
    rows = query(db, "SELECT kind, status, answer, correct FROM solutions WHERE kind IN ('long', 'short') ORDER BY 1")
    assert len(rows) == 4 and all(status == "unparseable" and answer is None and correct is not True
                                  for _, status, answer, correct in rows), rows
    reasons = query(db, "SELECT role, reason FROM drops WHERE role LIKE '%solver' ORDER BY 1")
    assert len(reasons) == 4 and all("answer field must be a number" in r for _, r in reasons), reasons
