import pytest
from pydantic import ValidationError

from factory.spec import JobError, load_job, parse_job
from support import REPO, fake_job


def test_demo_job_is_valid():
    spec = load_job(REPO / "jobs/tinystories-demo.yaml")
    assert spec.num_samples == 30 and spec.recipe == "tinystories"


def test_unknown_field_is_named_on_one_line():
    with pytest.raises(JobError) as e:
        parse_job(fake_job(reviewrs=3), "job.yaml")
    assert str(e.value).startswith("job.yaml: reviewrs: unknown field; allowed here: name, recipe, num_samples")
    assert "\n" not in str(e.value)
    job = fake_job()
    job["roles"]["reviewer"]["temp"] = 1
    with pytest.raises(JobError, match=r"roles.reviewer.temp: unknown field; allowed here: backend, model, endpoint, tensor_parallel_size, wrong_rate, template"):
        parse_job(job, "job.yaml")


def test_nested_bad_value_names_the_path_and_what_is_allowed():
    job = fake_job()
    job["roles"]["reviewer"]["sampling"] = {"temperature": 5}
    with pytest.raises(JobError) as e:
        parse_job(job, "job.yaml")
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("job.yaml: roles.reviewer.sampling.temperature: ")
    assert "less than or equal to 2" in msg and "(got 5)" in msg


def test_decision_thresholds_must_be_ordered():
    with pytest.raises(JobError, match="reject_mean must be <= accept_mean"):
        parse_job(fake_job(decision={"accept_mean": 5, "reject_mean": 6}))


def test_fingerprint_ignores_size_and_db_but_not_content():
    a = parse_job(fake_job())
    assert a.fingerprint == parse_job(fake_job(num_samples=99, db="elsewhere.duckdb")).fingerprint
    assert a.fingerprint != parse_job(fake_job(seed=4)).fingerprint
    assert a.fingerprint != parse_job(fake_job(reviewers=2)).fingerprint


def test_yaml_syntax_error_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n  num_samples: [\n")
    with pytest.raises(JobError) as e:
        load_job(bad)
    assert "not valid YAML" in str(e.value) and "\n" not in str(e.value)


def test_a_misspelt_field_is_named_first_with_the_field_it_meant():
    from factory.job_errors import one_line_error
    from factory.spec import JobSpec

    try:
        JobSpec.model_validate({"name": "t", "recipe": "tinystories", "num_sample": 3})
    except ValidationError as err:
        line = one_line_error("j.yaml", err, JobSpec)
    assert line.startswith("j.yaml: num_sample: unknown field; allowed here: name, recipe, num_samples"), line
    assert "; did you mean num_samples?" in line and "Field required" not in line, line


def test_a_misspelt_template_name_gets_the_closest_built_in_one():
    from roles.templates import TemplateError, load_template

    with pytest.raises(TemplateError, match=r"no file prompts/tinystories/generatr\.v2\.jinja; "
                                            r"did you mean tinystories/generator@2\?"):
        load_template("tinystories/generatr@2")


def test_a_spec_built_in_python_learns_its_recipe_before_its_fingerprints_are_read():
    # factory/job_spec.py (the core) never looks a recipe up: parse_job tells the spec its
    # recipe's templates and decision defaults; a spec built as a model learns them from
    # factory/spec.py's with_recipe_known, and until then says how to read the job.
    from factory.job_spec import JobSpec
    from factory.spec import known_fingerprints

    parsed = load_job(REPO / "jobs/math-embedded.yaml")
    built = JobSpec.model_validate(parsed.model_dump())
    assert parsed.recipe_known and not built.recipe_known and built.recipe_templates is None
    with pytest.raises(RuntimeError, match="read the job with factory.spec.parse_job"):
        built.legacy_fingerprints()
    assert known_fingerprints(built) == [parsed.fingerprint, *parsed.legacy_fingerprints()]
    assert built.recipe_known and built.recipe_templates == parsed.recipe_templates
    assert len(known_fingerprints(built)) > 1  # the math job has fingerprints from before its options moved
