"""Job identity and GRA pools (issue 15 items 3 and 4): execution settings never fork a
job; a name resolves to its newest job; pool draws are deterministic, distinct per sample
and never the author when asked; impossible pools fail at load."""
from __future__ import annotations

import json

import pytest
from support import fake_job, query, write_job

from factory.cli import main
from factory.pipeline import run_job
from factory.spec import JobError, parse_job


def test_execution_settings_continue_the_same_job(tmp_path):
    db = tmp_path / "e.duckdb"
    first = parse_job(fake_job(num_samples=8, execution={"executor": "local", "batch_size": 4}))
    other = parse_job(fake_job(num_samples=12, execution={"executor": "local", "batch_size": 3, "engines": 1,
                                                          "threads_per_engine": 2}))
    assert first.fingerprint == other.fingerprint
    run_job(first, db=db)
    result = run_job(other, db=db)
    assert result.seeds_done_before == 8 and result.seeds_processed == 4
    assert query(db, "SELECT count(*), count(DISTINCT job) FROM seeds") == [(12, 1)]


def test_a_database_made_under_the_old_fingerprint_continues_that_job(tmp_path):
    spec = parse_job(fake_job(num_samples=6))
    legacy = spec.legacy_fingerprints()[0]
    from stores import Store

    with Store(tmp_path / "old.duckdb") as store:  # the job as an older factory registered it
        store.register_job(legacy, spec.name, spec.recipe, {}, {}, 3)
    result = run_job(spec, db=tmp_path / "old.duckdb")
    assert result.job == legacy
    assert query(tmp_path / "old.duckdb", "SELECT DISTINCT job FROM samples") == [(legacy,)]


def test_a_name_resolves_to_its_newest_job_and_jobs_lists_them(tmp_path, capsys):
    db = tmp_path / "n.duckdb"
    run_job(parse_job(fake_job(num_samples=4, seed=1)), db=db)
    newer = parse_job(fake_job(num_samples=4, seed=2))
    run_job(newer, db=db)
    assert main(["stats", "fake-job", "--db", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["job"] == newer.fingerprint
    assert main(["jobs", "--db", str(db), "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [j["job"] for j in listed][0] == newer.fingerprint and len(listed) == 2
    assert all(j["seeds_done"] == 4 and j["recipe"] == "tinystories" for j in listed)


def pool_job(**extra) -> dict:
    pool = [{"backend": "fake", "model": m} for m in ("fake", "fake-b", "fake-c")]
    job = fake_job(num_samples=10, reviewers=3)
    job["roles"]["generator"]["pool"] = pool[:2]
    job["roles"]["reviewer"] = {"template": "tinystories/reviewer@1", "pool": pool, **extra}
    return job


def test_reviewers_of_a_sample_are_distinct_models_and_never_its_author(tmp_path):
    db = tmp_path / "p.duckdb"
    run_job(parse_job(pool_job(exclude_generator_model=True)), db=db)
    rows = query(db, """SELECT s.sample_id, json_extract_string(s.model, '$.model'),
                               list(json_extract_string(r.model, '$.model'))
                        FROM samples s JOIN reviews r USING (sample_id) GROUP BY ALL""")
    assert rows and {author for _, author, _ in rows} == {"fake", "fake-b"}  # the generator pool is drawn too
    for _, author, reviewers in rows:
        assert author not in reviewers
        assert len(set(reviewers)) == min(len(reviewers), 2)  # 2 eligible models: distinct while the pool allows
    again = tmp_path / "p2.duckdb"
    run_job(parse_job(pool_job(exclude_generator_model=True)), db=again)
    assert query(again, "SELECT review_id, model FROM reviews ORDER BY 1") == \
        query(db, "SELECT review_id, model FROM reviews ORDER BY 1")  # deterministic draws


def test_without_exclusion_three_reviewers_are_the_three_pool_models(tmp_path):
    db = tmp_path / "p.duckdb"
    run_job(parse_job(pool_job()), db=db)
    for (models,) in query(db, "SELECT list(json_extract_string(model, '$.model')) FROM reviews GROUP BY sample_id"):
        if len(models) == 3:
            assert sorted(models) == ["fake", "fake-b", "fake-c"]


def test_a_pool_that_cannot_exclude_the_author_fails_at_load(tmp_path):
    job = fake_job()
    job["roles"]["reviewer"]["exclude_generator_model"] = True  # one model: the author itself
    with pytest.raises(JobError, match="exclude_generator_model: no model of the reviewer's pool"):
        from factory.pipeline import bind_roles, make_recipe

        spec = parse_job(job)
        bind_roles(spec, make_recipe(spec))
    assert main(["run", "--quiet", "--db", str(tmp_path / "x.duckdb"), str(write_job(tmp_path, job))]) == 2
    assert not (tmp_path / "x.duckdb").exists()


def test_editing_a_user_template_or_recipe_file_makes_another_job(tmp_path):
    """issue 24 item 9: an edit in place kept the fingerprint, so a rerun mixed two
    versions of a template in one job."""
    import yaml
    from support import fake_job

    from factory.spec import load_job

    (tmp_path / "tpl" / "tinystories").mkdir(parents=True)
    reviewer = tmp_path / "tpl" / "tinystories" / "reviewer.v1.jinja"
    reviewer.write_text("{% block user %}Rate this story: {{ story }} (JSON){% endblock %}")
    generator = tmp_path / "story.jinja"
    generator.write_text('{% block user %}A story with "{{ verb }}", "{{ noun }}", "{{ adjective }}".{% endblock %}')
    recipe = tmp_path / "my_recipe.py"
    recipe.write_text("from factory.recipes.tinystories import TinyStories\n\n\nclass Mine(TinyStories):\n"
                      "    pass\n")
    job = fake_job(templates_dir="tpl", recipe="my_recipe.py:Mine")
    job["roles"]["generator"]["template"] = "story.jinja"
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    seen = [load_job(path)]
    assert set(seen[0].canonical()["files"]) == {"recipe", "roles.generator.template", "roles.reviewer.template"}
    assert str(tmp_path) not in json.dumps(seen[0].canonical())  # hashes by field, no path of this machine
    for edited in (generator, reviewer, recipe):
        edited.write_text(edited.read_text() + "\n")
        seen.append(load_job(path))
    assert len({s.fingerprint for s in seen}) == 4
    # the edited template is what the new job renders (not a cached earlier version)
    from roles.templates import load_template

    assert load_template("story.jinja", str(tmp_path)).source.endswith("\n")
    # built-in templates and recipes are not files of the job: the fingerprint is as before
    assert "files" not in parse_job(fake_job()).canonical()


def test_a_job_made_before_file_hashes_entered_the_fingerprint_continues(tmp_path, monkeypatch):
    import yaml
    from support import fake_job

    import fakes
    from factory.spec import JobSpec, load_job

    (tmp_path / "story.jinja").write_text('{% block user %}A story with "{{ verb }}", "{{ noun }}", '
                                          '"{{ adjective }}".{% endblock %}')
    job = fake_job(num_samples=4)
    job["roles"]["generator"]["template"] = "story.jinja"
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    db = tmp_path / "old.duckdb"
    with monkeypatch.context() as m:  # the code before: no file hashes in the canonical spec
        m.setattr(JobSpec, "user_files", lambda self: {})
        old = load_job(path)
        run_job(old, db=db)
    spec = load_job(path)
    assert spec.fingerprint != old.fingerprint and spec.legacy_fingerprints()[0] == old.fingerprint
    fakes.CALLS.clear()
    result = run_job(spec, db=db)
    assert result.job == old.fingerprint and not fakes.CALLS
    assert query(db, "SELECT fingerprint FROM jobs") == [(old.fingerprint,)]
