"""The `factory` command's error paths and read-only commands (in-process, fake backend)."""
import json

import yaml

import support
from support import fake_job
from factory.cli import main
from factory.pipeline import run_job
from factory.spec import parse_job


def write_job(tmp_path, **overrides):
    return support.write_job(tmp_path, fake_job(**overrides))


def test_invalid_job_exits_2_with_one_line_and_creates_no_database(tmp_path, capsys):
    job = write_job(tmp_path, num_samples=0)
    db = tmp_path / "x.duckdb"
    assert main(["run", str(job), "--db", str(db), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith(f"error: {job}: num_samples: Input should be greater than or equal to 1")
    assert not db.exists()


def test_unknown_backend_lists_the_registered_ones(tmp_path, capsys, monkeypatch):
    from factory import backends

    # the built-ins and the test's fake only: another test in this worker process (-n 2) may
    # have registered a backend of its own without taking it back
    monkeypatch.setattr(backends, "_REGISTRY", {k: v for k, v in backends._REGISTRY.items()
                                                if k in ("fake", "llamacpp", "openai", "reference", "vllm")})
    job = fake_job()
    job["roles"]["reviewer"]["backend"] = "nope"
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    db = tmp_path / "x.duckdb"
    # an invalid job file (issue 10): exit 2, the line lists what exists and where plugins are found
    assert main(["run", str(path), "--db", str(db), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "roles.reviewer.backend: unknown backend 'nope': known backends are fake, llamacpp, openai, reference, vllm" in err
    assert "entry point group factory.backends" in err and len(err.strip().splitlines()) == 1
    assert not db.exists()


def test_run_then_stats_json_and_sql(tmp_path, capsys):
    job, db = write_job(tmp_path), tmp_path / "f.duckdb"
    assert main(["run", str(job), "--db", str(db), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["stats", "--db", str(db), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["funnel"]["seeds"] == 12 and first["name"] == "fake-job"
    assert main(["run", str(job), "--db", str(db), "--quiet"]) == 0
    assert "already done, no model calls" in capsys.readouterr().err
    assert main(["stats", "fake-job", "--db", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == first
    assert main(["sql", "SELECT count(*) AS n FROM seeds", "--db", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"n": 12}


def test_sql_is_read_only(tmp_path, capsys):
    db = tmp_path / "f.duckdb"
    run_job(parse_job(fake_job()), db=db)
    assert main(["sql", "DELETE FROM samples", "--db", str(db)]) == 2  # a refused statement is bad input (issue 15): exit 2
    assert "read-only" in capsys.readouterr().err
    assert main(["sql", "SELECT count(*) FROM samples", "--db", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count_star()"] > 0


def test_stats_of_an_unknown_job_lists_the_jobs(tmp_path, capsys):
    db = tmp_path / "f.duckdb"
    run_job(parse_job(fake_job()), db=db)
    assert main(["stats", "nosuch", "--db", str(db)]) == 1
    assert "no job 'nosuch' in this database; jobs: fake-job (" in capsys.readouterr().err


def test_stats_without_a_database_says_so(tmp_path, capsys):
    assert main(["stats", "--db", str(tmp_path / "none.duckdb")]) == 1
    assert "no database at" in capsys.readouterr().err
