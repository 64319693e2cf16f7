"""Nothing is written for an invalid job (issue 23 E and F): for each error class a job can
fail with while it loads, `factory run` exits with one line and leaves no file behind:
no database, no WAL, no snapshot. A generator template without a `user` block used to
exit 2 only at its first render, after the database had 29 tables and a jobs row; a job
file nested 10,000 levels deep exited 1 "maximum recursion depth exceeded", naming nothing."""
from __future__ import annotations

import json

import pytest
import yaml

from support import fake_job
from factory.cli import INVALID_INPUT, main
from factory.job_errors import JobError
from factory.plugins import PluginError
from factory.spec import load_job
from roles.templates import TemplateError

DEEP = 10_000  # the fault-injection round's file: 10,000 nested lists or maps


def _template(tmp_path, source: str) -> dict:
    (tmp_path / "gen.jinja").write_text(source)
    job = fake_job()
    job["roles"]["generator"]["template"] = "./gen.jinja"
    return job


def _yaml(job: dict) -> str:
    return yaml.safe_dump(job)


# (class the problem starts as, what the line says, exit code, the job file's text)
CASES = {
    "field": (JobError, "num_samples: Input should be greater than or equal to 1", 2,
              lambda tmp: _yaml(fake_job(num_samples=0))),
    "unknown-backend": (JobError, "unknown backend 'nope'", 2,
                        lambda tmp: _yaml(fake_job(roles={**fake_job()["roles"],
                                                          "reviewer": {"backend": "nope", "model": "m"}}))),
    "deep-yaml-lists": (JobError, "nested deeper than 64 levels", 2,
                        lambda tmp: _yaml(fake_job()) + "options: " + "[" * DEEP + "]" * DEEP + "\n"),
    "deep-yaml-maps": (JobError, "nested deeper than 64 levels", 2,
                       lambda tmp: _yaml(fake_job()) + "options: " + "{a: " * DEEP + "1" + "}" * DEEP + "\n"),
    "deep-json": (JobError, "nested deeper than 64 levels", 2,
                  lambda tmp: json.dumps(fake_job())[:-1] + ', "options": ' + '{"a": ' * 100 + "1" + "}" * 100 + "}"),
    "deep-block-yaml": (JobError, "nested deeper than 64 levels", 2,  # parses (under the composer's limit) but deep
                        lambda tmp: _yaml(fake_job()) + "options:\n" + "".join(
                            "  " * (i + 1) + f"k{i}:\n" for i in range(80)) + "  " * 81 + "v: 1\n"),
    "yaml-cycle": (JobError, "nested deeper than 64 levels", 2,
                   lambda tmp: _yaml(fake_job()) + "options: &a [1, *a]\n"),
    "unknown-recipe-plugin": (PluginError, "recipe:", 2,
                              lambda tmp: _yaml(fake_job(recipe="no_such_module_xyz:Recipe"))),
    "template-no-user-block": (TemplateError, "must define a non-empty `user` block", 2,
                               lambda tmp: _yaml(_template(tmp, "{% block system %}Write a story.{% endblock %}"))),
    "template-empty-user-block": (TemplateError, "must define a non-empty `user` block", 2,
                                  lambda tmp: _yaml(_template(tmp, "{% block user %}  \n{% endblock %}"))),
    "template-syntax": (TemplateError, "template syntax error", 2,
                        lambda tmp: _yaml(_template(tmp, "{% block user %}{{ oops {% endblock %}"))),
    "template-unknown-variable": (TemplateError, "uses `nobody_gives_this`", 2,
                                  lambda tmp: _yaml(_template(tmp, "{% block user %}{{ nobody_gives_this }}"
                                                                   "{% endblock %}"))),
    "template-missing": (TemplateError, "template 'tinystories/nope@9'", 2,
                         lambda tmp: _yaml(fake_job(roles={**fake_job()["roles"], "reviewer": {
                             "backend": "fake", "model": "fake", "template": "tinystories/nope@9"}}))),
    # a missing seed file is found when the recipe is made (a FileNotFoundError, exit 1)
    "missing-seed-file": (FileNotFoundError, "does not exist", 1,
                          lambda tmp: _yaml(fake_job(recipe="math", math={"source": "file",
                                                                          "seed_file": str(tmp / "none.jsonl")},
                                                     roles={r: {"backend": "fake", "model": "fake"} for r in (
                                                         "problem_writer", "generator", "long_solver",
                                                         "short_solver", "reviewer", "adjudicator")}))),
}


def test_every_load_time_error_class_has_a_case():
    # a new class the CLI maps to exit 2 needs a case here: nothing may be written for it either
    assert set(INVALID_INPUT) <= {cls for cls, *_ in CASES.values()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_invalid_job_writes_no_file(case, tmp_path, capsys):
    _, says, code, text = CASES[case]
    job = tmp_path / "job.yaml"
    job.write_text(text(tmp_path))
    before = set(tmp_path.iterdir())
    db = tmp_path / "x.duckdb"
    assert main(["run", str(job), "--db", str(db), "--quiet"]) == code
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert set(tmp_path.iterdir()) == before  # no database, WAL, snapshot or temp file


@pytest.mark.parametrize("case", sorted(c for c in CASES if c.startswith(("deep", "yaml-cycle"))))
def test_a_deeply_nested_job_file_is_one_line_naming_the_file(case, tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(CASES[case][3](tmp_path))
    with pytest.raises(JobError) as raised:
        load_job(job)
    assert str(raised.value) == f"{job}: nested deeper than 64 levels of lists and mappings: a job file nests a few"
