"""Orca-Math's harder variants (issue 10, "Prove it" item 3): a `source: harder` math job
takes another job's accepted problems as parents; the suggester says how to make each
harder, the editor rewrites it, and the new problem is solved and verified like any
written problem (no ground truth: the programs' majority decides)."""
from __future__ import annotations

import json

import duckdb
import pytest
import yaml

import fakes
from support import fake_job, query
from factory.cli import main
from factory.pipeline import run_job
from factory.spec import JobError, parse_job, recipe_of
from stores.stats import UnknownJob, job_stats

ROLES = ("problem_writer", "generator", "long_solver", "short_solver", "reviewer", "adjudicator", "suggester",
         "editor")
# Every verified problem is accepted: the fake reviewers' scores must not decide whether
# the harder job has parents to work on.
LOOSE = {"accept_mean": 0, "max_spread": 10, "reject_mean": 0}


def math_dict(db, name: str, num_samples: int = 8, **options) -> dict:
    return fake_job(name=name, recipe="math", num_samples=num_samples, options=options, db=str(db), decision=LOOSE,
                    roles={r: {"backend": "fake", "model": "fake"} for r in ROLES})


def math_job(db, name: str, num_samples: int = 8, **options):
    return parse_job(math_dict(db, name, num_samples, **options))


def accepted(db, job: str) -> list[tuple[str, str]]:
    return query(db, f"""SELECT s.sample_id, s.text FROM samples s JOIN verdicts v USING (sample_id)
                         WHERE s.job = '{job}' AND v.decision = 'accept' ORDER BY s.seed_index""")


def stats_of(db, job: str) -> dict:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return job_stats(con, job)
    finally:
        con.close()


def make_parents(db, **roles) -> tuple[str, list[tuple[str, str]]]:
    """A builtin math job in db: (its fingerprint, its accepted problems). The fake's
    programs add the question's numbers, which no builtin answer is: the first two
    problems' three programs are scripted to return the ground truth, so those two are
    verified (and accepted) and the other two are not."""
    spec = math_job(db, "parents", num_samples=4, programs=3)
    recipe = recipe_of(spec)(spec)
    truths = [recipe.make_seed(i)["ground_truth"] for i in range(2)]
    fakes.script(*[f"def simple_math_problem():\n    return {t}\n" for t in truths for _ in range(3)])
    parent = run_job(spec, db=db)
    problems = accepted(db, parent.job)
    assert [q for _, q in problems] == [recipe.make_seed(i)["question"] for i in range(2)]
    fakes.CALLS.clear()
    return parent.job, problems


@pytest.fixture
def parents(tmp_path):
    db = tmp_path / "m.duckdb"
    return (db, *make_parents(db))


def test_harder_variants_point_at_their_parents_and_are_solved_and_verified(parents):
    db, parent_job, problems = parents
    result = run_job(math_job(db, "harder", num_samples=100, source="harder", parent_job="parents"), db=db)
    assert result.target == len(problems)  # one seed per accepted parent, not num_samples
    seeds = query(db, f"SELECT seed_index, payload FROM seeds WHERE job = '{result.job}' ORDER BY seed_index")
    assert [i for i, _ in seeds] == list(range(len(problems)))
    for (_, payload), (parent_sample, parent_text) in zip(seeds, problems):
        p = json.loads(payload)
        assert (p["parent_sample_id"], p["parent_question"], p["parent_job"]) == (parent_sample, parent_text,
                                                                                   parent_job)
        assert p["suggestion"] and p["suggester"]["role"] == "suggester"
        assert p["suggester"]["template"] == "math/suggester@1" and p["suggester"]["completion_tokens"] > 0
    # the suggestions' tokens are counted (stats, budgets) from the seed rows that hold their lineage
    suggested = [json.loads(payload)["suggester"] for _, payload in seeds]
    tokens = stats_of(db, "harder")["tokens"]["suggester"]
    assert tokens["calls"] == len(problems)
    assert tokens["completion_tokens"] == sum(s["completion_tokens"] for s in suggested) > 0
    assert tokens["prompt_tokens"] == sum(s["prompt_tokens"] for s in suggested)
    con = duckdb.connect(str(db), read_only=True)
    try:  # the per-batch summaries and the rows agree on it
        assert job_stats(con, result.job, exact=True)["tokens"] == stats_of(db, "harder")["tokens"]
    finally:
        con.close()
    samples = query(db, f"""SELECT seed_index, role, template, payload, text FROM samples
                            WHERE job = '{result.job}' ORDER BY seed_index""")
    assert len(samples) == len(problems)
    for i, role, template, payload, text in samples:
        assert (role, template) == ("editor", "math/editor@1") and text != problems[i][1]
        assert json.loads(payload) == {"ground_truth": None, "origin": f"harder-of:{problems[i][0]}"}
    # the suggester read the parent; the editor the parent and the suggestion
    prompts = [r.messages[-1]["content"] for r in fakes.CALLS]
    suggestion = json.loads(seeds[0][1])["suggestion"]
    assert any(problems[0][1] in m and "harder" in m and suggestion not in m for m in prompts)
    assert any(problems[0][1] in m and f"Make it harder this way: {suggestion}" in m for m in prompts)
    # the path of a written problem: every attempt kept, a verification from the programs' majority
    kinds = query(db, f"""SELECT list(kind ORDER BY kind, attempt) FROM solutions WHERE job = '{result.job}'
                          GROUP BY sample_id""")
    assert kinds == [(["long", "program", "program", "program", "short"],)] * len(problems)
    checks = query(db, f"SELECT reference_source, verified FROM verifications WHERE job = '{result.job}'")
    assert len(checks) == len(problems) and any(verified for _, verified in checks)
    assert all(source in ("majority", "none") and verified == (source == "majority") for source, verified in checks)
    stats = stats_of(db, "harder")
    funnel = stats["funnel"]
    assert stats["job"] == result.job and funnel["seeds"] == len(problems)
    assert stats["verification"]["checked"] == len(problems)
    assert funnel["accepted"] == funnel["reviewed"] == sum(verified for _, verified in checks)  # LOOSE
    # finished: a rerun makes no model call; the parent job is untouched
    again = run_job(math_job(db, "harder", num_samples=100, source="harder", parent_job="parents"), db=db)
    assert (again.job, again.seeds_processed, again.model_calls) == (result.job, 0, 0)
    assert accepted(db, parent_job) == problems


def test_an_unusable_suggestion_or_edit_is_a_drop_row_with_its_role(parents):
    db, _, problems = parents
    fakes.script("Sure! Make it harder by adding a step.",                           # suggester, seed 0: not JSON
                 json.dumps({"suggestion": "Add a step: she gives away a third of them."}),  # suggester, seed 1
                 json.dumps({"question": "  " + problems[1][1].upper() + " "}))      # editor, seed 1: the parent again
    result = run_job(math_job(db, "harder", source="harder", parent_job="parents"), db=db)
    drops = query(db, f"SELECT seed_id, role, reason, template FROM drops WHERE job = '{result.job}' ORDER BY role")
    assert [(role, template) for _, role, _, template in drops] == [("editor", "math/editor@1"),
                                                                     ("suggester", "math/suggester@1")]
    assert drops[0][2] == "the edited problem is the parent problem unchanged"
    assert drops[1][2].startswith("invalid JSON")
    payloads = [json.loads(p) for (p,) in query(db, f"SELECT payload FROM seeds WHERE job = '{result.job}' "
                                                    "ORDER BY seed_index")]
    assert [p["suggestion"] for p in payloads] == [None, "Add a step: she gives away a third of them."]
    assert [p["parent_sample_id"] for p in payloads] == [s for s, _ in problems]
    assert query(db, f"SELECT count(*) FROM samples WHERE job = '{result.job}'") == [(0,)]
    assert stats_of(db, "harder")["funnel"]["dropped"] == 2


def test_a_missing_parent_job_is_one_line_and_writes_nothing(parents, tmp_path, capsys):
    db, _, _ = parents
    before = query(db, "SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM seeds), "
                       "(SELECT count(*) FROM completions)")
    with pytest.raises(UnknownJob, match=r"^options\.parent_job: no job 'nope' in this database; jobs: parents"):
        run_job(math_job(db, "harder", source="harder", parent_job="nope"), db=db)
    job_file = tmp_path / "harder.yaml"
    job_file.write_text(yaml.safe_dump(math_dict(db, "harder", source="harder", parent_job="nope")))
    assert main(["run", str(job_file), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: options.parent_job: no job 'nope'") and err.count("\n") == 1
    assert query(db, "SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM seeds), "
                     "(SELECT count(*) FROM completions)") == before
    # no database at the job's db: one line, and no file is made
    elsewhere = tmp_path / "none.duckdb"
    with pytest.raises(UnknownJob, match="no database at .*none.duckdb"):
        run_job(math_job(elsewhere, "harder", source="harder", parent_job="parents"), db=elsewhere)
    assert not elsewhere.exists()
    # a job of another recipe has no math problems to make harder
    stories = tmp_path / "s.duckdb"
    run_job(parse_job(fake_job(num_samples=2, db=str(stories))), db=stories)
    with pytest.raises(UnknownJob, match="is a tinystories job"):
        run_job(math_job(stories, "harder", source="harder", parent_job="fake-job"), db=stories)


def test_harder_options_are_checked_and_parents_come_from_the_database_the_run_writes(parents, tmp_path, capsys):
    db, _, _ = parents
    with pytest.raises(JobError, match=r"options\..*source 'harder' needs parent_job"):
        math_job(db, "h", source="harder")
    with pytest.raises(JobError, match="parent_job is read only when source is 'harder'"):
        math_job(db, "h", parent_job="parents")
    job_file = tmp_path / "harder.yaml"
    job_file.write_text(yaml.safe_dump(math_dict(db, "harder", source="harder", parent_job="parents")))
    # --db names the database the run writes, and the parents are read from it: a
    # parent_sample_id never names a sample of another file
    other = tmp_path / "other.duckdb"
    assert main(["run", str(job_file), "--quiet", "--db", str(other)]) == 1
    err = capsys.readouterr().err
    assert f"no database at {other}" in err and err.count("\n") == 1 and not other.exists()


def test_old_math_jobs_keep_their_fingerprints():
    """jobs/math.yaml before the recipe refactor, between the refactor and the harder
    variants' roles (suggester, editor) and option (parent_job), and before the decision
    rule's signal fields (issue 11)."""
    from factory.spec import load_job

    spec = load_job("jobs/math.yaml")
    assert spec.legacy_fingerprints() == ["bf44be7e4a7cfd5d", "52cad50c087f4405", "2879bd176626c04c"]
    assert spec.fingerprint not in spec.legacy_fingerprints()


@pytest.mark.model
def test_harder_variants_on_the_real_model(tmp_path):
    """Parents on the fake backend (the 135M model rarely gets a builtin problem verified);
    the harder job's every role on SmolLM2 through llama.cpp."""
    db = tmp_path / "m.duckdb"
    make_parents(db)
    small = {"suggester": 60, "editor": 96, "generator": 128, "long_solver": 128, "short_solver": 64,
             "reviewer": 80, "adjudicator": 80, "problem_writer": 16}
    spec = parse_job({"name": "harder", "recipe": "math", "num_samples": 2, "seed": 5, "reviewers": 1, "db": str(db),
                      "options": {"source": "harder", "parent_job": "parents", "programs": 2},
                      "roles": {r: {"sampling": {"max_tokens": n}} for r, n in small.items()},
                      "execution": {"executor": "local", "batch_size": 2}})
    result = run_job(spec, db=db)
    assert result.target == 2 and result.model_calls >= 2
    seeds = [json.loads(p) for (p,) in query(db, f"SELECT payload FROM seeds WHERE job = '{result.job}'")]
    assert len(seeds) == 2 and all(p["parent_sample_id"] and p["parent_question"] for p in seeds)
    suggested = [p for p in seeds if p["suggestion"]]
    suggester_drops = query(db, f"SELECT count(*) FROM drops WHERE job = '{result.job}' AND role = 'suggester'")
    assert len(suggested) + suggester_drops[0][0] == 2  # each seed: a suggestion or a drop row saying why
    samples = query(db, f"SELECT sample_id, role FROM samples WHERE job = '{result.job}'")
    editor_drops = query(db, f"SELECT count(*) FROM drops WHERE job = '{result.job}' AND role = 'editor'")
    assert len(samples) + editor_drops[0][0] == len(suggested)
    assert all(role == "editor" for _, role in samples)
    verified = query(db, f"SELECT count(*) FROM verifications WHERE job = '{result.job}'")
    assert verified == [(len(samples),)]
    assert stats_of(db, "harder")["funnel"]["seeds"] == 2
