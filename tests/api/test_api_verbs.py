"""Every CLI verb from Python (`factory.api`): each returns the data that the CLI prints or
writes for the same database, on the fake backend. And `export` / `distill` on a job that
was never curated warn (UncuratedWarning; the CLI prints a `warning:` line naming
`factory curate`); export stops warning once the job is curated."""
import json
import shutil
import warnings

import pytest
import yaml

from support import fake_job, query
from factory import api
from factory.cli import main
from factory.spec import JobError

JOB = fake_job(name="api-stories", recipe="tinystories", num_samples=12)


@pytest.fixture(scope="module")
def stories(tmp_path_factory):
    """A fake tinystories job of 12 seeds, run through the API; the RunResult and its db."""
    db = tmp_path_factory.mktemp("api") / "s.duckdb"
    return api.run(JOB, db=db), db


def _cli(capsys, *argv) -> tuple[str, str]:
    capsys.readouterr()  # drop whatever came before
    assert main([str(a) for a in argv]) == 0
    got = capsys.readouterr()
    return got.out, got.err


def _as_json(data):
    """What `--json` prints for the same data (datetimes as strings, tuples as lists)."""
    return json.loads(json.dumps(data, default=str))


def test_run_returns_what_it_did(stories):
    result, db = stories
    assert query(db, "SELECT fingerprint, name FROM jobs") == [(result.job, "api-stories")]
    assert result.seeds_processed == 12 and result.seeds_done_before == 0 and result.model_calls > 0
    assert query(db, "SELECT count(*) FROM seeds")[0][0] == 12
    again = api.run(JOB, db=db)  # a rerun of a finished job makes no model call
    assert (again.job, again.seeds_processed, again.seeds_done_before, again.model_calls) == (result.job, 0, 12, 0)


def test_stats_equals_the_cli_json(stories, capsys):
    _, db = stories
    stats = api.stats(db)
    out, _ = _cli(capsys, "stats", "--db", db, "--json")
    assert json.loads(out) == _as_json(stats)
    assert stats["funnel"]["seeds"] == 12


def test_sql_equals_the_cli_json_lines(stories, capsys):
    _, db = stories
    q = "SELECT sample_id, seed_index, text FROM samples ORDER BY seed_index"
    rows = api.sql(q, db=db)
    out, _ = _cli(capsys, "sql", q, "--db", db, "--json")
    assert [json.loads(line) for line in out.splitlines()] == rows
    assert len(rows) == query(db, "SELECT count(*) FROM samples")[0][0] > 0


def test_explain_equals_the_cli_json(stories, capsys):
    _, db = stories
    sample_id = query(db, "SELECT sample_id FROM samples ORDER BY seed_index LIMIT 1")[0][0]
    story = api.explain(sample_id[:12], db)  # a unique prefix, as on the command line
    out, _ = _cli(capsys, "explain", sample_id[:12], "--db", db, "--json")
    assert json.loads(out) == _as_json(story)
    assert story["sample_id"] == sample_id and story["job"]["name"] == "api-stories"


def test_export_rows_are_the_accepted_view(stories, tmp_path, capsys):
    _, db = stories
    with pytest.warns(api.UncuratedWarning):  # never curated: tested on its own below
        result = api.export(db, out=tmp_path / "api", format="jsonl")
    accepted = query(db, "SELECT count(*) FROM accepted")[0][0]
    assert result == {"rows": accepted, "format": "jsonl", "path": tmp_path / "api"} and accepted > 0
    api_lines = (tmp_path / "api" / "data.jsonl").read_text().splitlines()
    assert len(api_lines) == accepted
    _, err = _cli(capsys, "export", "--db", db, "--format", "jsonl", "-o", tmp_path / "cli")
    assert f"exported {accepted} rows as jsonl to {tmp_path / 'cli'}" in " ".join(err.split())
    assert (tmp_path / "cli" / "data.jsonl").read_text().splitlines() == api_lines


def test_report_writes_the_same_html_as_the_cli(stories, tmp_path, capsys):
    _, db = stories
    path = api.report(db, "api-stories", out=tmp_path / "api.html")
    assert path == tmp_path / "api.html" and path.is_file()
    html = path.read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and "api-stories" in html
    _cli(capsys, "report", "api-stories", "--db", db, "-o", tmp_path / "cli.html")
    assert (tmp_path / "cli.html").read_text() == html


def _copy_with_job_file(stories, tmp_path):
    """A copy of the stories db (curated below) and its job file with semantic dedup off
    (the embedding model is not what this tests)."""
    _, db = stories
    copy = tmp_path / "c.duckdb"
    shutil.copy(db, copy)
    job_file = tmp_path / "job.yaml"
    job_file.write_text(yaml.safe_dump({**JOB, "curation": {"semantic": False}}))
    return copy, job_file


def test_export_warns_until_the_job_is_curated(stories, tmp_path, capsys):
    db, job_file = _copy_with_job_file(stories, tmp_path)
    with pytest.warns(api.UncuratedWarning, match=r"job api-stories was never curated.*`factory curate api-stories`"):
        api.export(db, "api-stories", out=tmp_path / "before")
    _, err = _cli(capsys, "export", "api-stories", "--db", db, "-o", tmp_path / "before-cli")
    assert ("warning: job api-stories was never curated: the accepted view has no near/semantic dedup or "
            "decontamination; run `factory curate api-stories` first") in err.splitlines()

    _cli(capsys, "curate", job_file, "--db", db)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = api.export(db, "api-stories", out=tmp_path / "after")
    assert not [w for w in caught if issubclass(w.category, api.UncuratedWarning)]
    assert result["rows"] == query(db, "SELECT count(*) FROM accepted")[0][0]
    _, err = _cli(capsys, "export", "api-stories", "--db", db, "-o", tmp_path / "after-cli")
    assert "warning" not in err


# --- distill and runs: a tiny student, a few steps ------------------------------------------

def distill_spec(db, out_dir, **over) -> dict:
    """One mixture of 8 short solutions, 2 epochs of batch 4 (4 steps), 2 held-out problems
    graded on 8 new tokens: seconds on 2 cores."""
    spec = {"name": "api-d", "db": str(db), "source": {"job": "fake-math", "use": "all", "require": "answered"},
            "mixtures": ["short"], "rows": 8,
            "student": {"kind": "tiny", "tiny": {"hidden_size": 32, "layers": 1, "heads": 2, "intermediate_size": 64}},
            "training": {"epochs": 2, "batch_size": 4, "checkpoint_every": 4, "max_length": 96},
            "evaluation": {"source": "held_out", "problems": 2, "max_new_tokens": 8},
            "output_dir": str(out_dir)}
    spec.update(over)
    return spec


@pytest.fixture(scope="module")
def distilled(math_db, student_cache, tmp_path_factory):  # noqa: F811 - fixtures imported above
    tmp = tmp_path_factory.mktemp("api-distill")
    db = tmp / "m.duckdb"
    shutil.copy(math_db, db)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACTORY_CACHE", str(student_cache))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            summaries = api.distill(distill_spec(db, tmp / "runs"))
    # use: all reads every problem, not the accepted view: nothing to warn about
    assert not [w for w in caught if issubclass(w.category, api.UncuratedWarning)]
    return db, summaries


@pytest.mark.slow  # `distilled` trains a student: 99 s at load 10-16 (tests/distill tests distill)
def test_distill_returns_a_summary_per_run(distilled):
    db, summaries = distilled
    assert [(s.mixture, s.status, s.rows, s.metric) for s in summaries] == [("short", "trained", 8, "accuracy")]
    (row,) = query(db, "SELECT run_id, value, ci_low, ci_high FROM runs WHERE distill = 'api-d'")
    s = summaries[0]
    assert (s.run_id, s.value, s.ci_low, s.ci_high) == row


@pytest.mark.slow
def test_distill_again_trains_nothing(distilled, tmp_path, student_cache, monkeypatch):  # noqa: F811
    db, summaries = distilled
    monkeypatch.setenv("FACTORY_CACHE", str(student_cache))
    spec_file = tmp_path / "d.yaml"  # a YAML path, as on the command line
    spec_file.write_text(yaml.safe_dump(distill_spec(db, tmp_path / "unused")))
    again = api.distill(spec_file)
    assert [(s.run_id, s.status, s.value) for s in again] == [(summaries[0].run_id, "already done", summaries[0].value)]


@pytest.mark.slow
def test_runs_equals_the_cli_json_lines(distilled, capsys):
    db, summaries = distilled
    runs = api.runs(db, "api-d")
    assert [r["run_id"] for r in runs] == [s.run_id for s in summaries]
    assert runs[0]["rows"] == 8 and runs[0]["training"]["steps"] >= 1
    out, _ = _cli(capsys, "runs", "api-d", "--db", db, "--json")
    assert [json.loads(line) for line in out.splitlines()] == _as_json(runs)
    assert api.runs(db, "no-such-distillation") == []


def test_distill_on_the_accepted_view_of_an_uncurated_job_warns(math_db, tmp_path, capsys):  # noqa: F811
    """The warning comes from planning, before any training; here the plan then stops, as
    the fake teacher is never right and the math job's accepted view is empty."""
    spec = distill_spec(math_db, tmp_path / "runs", source={"job": "fake-math", "use": "accepted"})
    with pytest.warns(api.UncuratedWarning, match=r"job fake-math was never curated.*`factory curate fake-math`"):
        with pytest.raises(JobError, match="nothing trained"):
            api.distill(spec)
    spec_file = tmp_path / "d.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    assert main(["distill", str(spec_file), "--quiet"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == ("warning: job fake-math was never curated: the accepted view has no near/semantic dedup or "
                      "decontamination; run `factory curate fake-math` first")
    assert err[1].startswith("error: rows: ")
