"""`factory preview JOB [--n N] [--run]` (issue 24 item 10): every role's messages for the
first seeds without a model call; with --run, outputs, gates and verdicts from a temporary
database, and nothing written to the job's."""
from __future__ import annotations

import json

import yaml

from factory.cli import main

FAKE = {"backend": "fake", "model": "fake"}


def job_file(tmp_path) -> tuple:
    db = tmp_path / "job.duckdb"
    job = {"name": "pv", "recipe": "tinystories", "num_samples": 10, "seed": 4, "reviewers": 2,
           "roles": {r: dict(FAKE) for r in ("generator", "reviewer", "adjudicator")},
           "execution": {"executor": "local", "batch_size": 4}, "db": str(db)}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path, db


def test_preview_renders_every_role_without_a_model_call(tmp_path, capsys):
    import fakes

    path, db = job_file(tmp_path)
    assert main(["preview", str(path), "--n", "2", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["seed_index"] for e in entries] == [0, 1]
    for e in entries:
        assert set(e["messages"]) == {"generator", "reviewer", "adjudicator"}
        generator = e["messages"]["generator"][-1]["content"]
        assert e["seed"]["noun"] in generator  # the seed's words are in the prompt
        assert "<story>" in e["messages"]["reviewer"][-1]["content"]  # what only a run writes, named
    assert fakes.CALLS == [] and not db.exists()
    assert main(["preview", str(path), "--n", "1"]) == 0
    assert "--- reviewer" in capsys.readouterr().out


def test_preview_run_shows_outputs_and_verdicts_and_writes_nothing(tmp_path, capsys):
    import fakes

    path, db = job_file(tmp_path)
    assert main(["preview", str(path), "--n", "3", "--run", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert len(fakes.CALLS) >= 3  # the generator ran for each seed
    stories = [s for e in entries for s in e["samples"]]
    assert stories and all(s["verdict"] and s["gates"] for s in stories)
    assert not db.exists() and list(tmp_path.iterdir()) == [path]


def test_preview_bad_n_is_exit_2(tmp_path, capsys):
    path, db = job_file(tmp_path)
    assert main(["preview", str(path), "--n", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --n: must be >= 1 (got 0)" and not db.exists()
