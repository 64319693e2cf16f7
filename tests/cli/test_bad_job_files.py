"""Bad job files (issue 15, items 13 and 17): one line naming the file and what is wrong,
exit 2, nothing written."""
from __future__ import annotations

import json

import pytest
import yaml
from support import fake_job, query

from factory.cli import main
from factory.pipeline import run_job
from factory.spec import parse_job


def run_cli(path, db, capsys) -> tuple[int, str]:
    code = main(["run", str(path), "--db", str(db), "--quiet"])
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize("kind", ["directory", "binary", "not-utf8", "huge-name", "no-recipe", "duplicate-key",
                                  "unknown-template"])
def test_a_bad_job_file_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, kind):
    path, db = tmp_path / "job.yaml", tmp_path / "x.duckdb"
    job = fake_job()
    if kind == "directory":
        path.mkdir()
        expected = "is a directory, not a job file"
    elif kind == "binary":
        path.write_bytes(b"\x00\x01\x02name: x\n")
        expected = "not a text file"
    elif kind == "not-utf8":
        path.write_bytes(b"name: caf\xe9\n")
        expected = "not a UTF-8 text file"
    elif kind == "huge-name":
        path.write_text(yaml.safe_dump({**job, "name": "n" * 5000}))
        expected = "name: String should have at most 200 characters"
    elif kind == "no-recipe":
        path.write_text(yaml.safe_dump({k: v for k, v in job.items() if k != "recipe"}))
        expected = "recipe: missing"
    elif kind == "duplicate-key":
        path.write_text(yaml.safe_dump(job) + "num_samples: 99\n")
        expected = "duplicate key 'num_samples'"
    else:
        job["roles"]["reviewer"]["template"] = "tinystories/nope@9"
        path.write_text(yaml.safe_dump(job))
        expected = "template 'tinystories/nope@9'"
    code, err = run_cli(path, db, capsys)
    assert code == 2 and expected in err and str(path) in err and len(err.splitlines()) == 1
    assert "Traceback" not in err and not db.exists()


def test_a_bom_prefixed_job_file_runs(tmp_path, capsys):
    """Windows editors write a byte-order mark: it is not an error."""
    path, db = tmp_path / "job.yaml", tmp_path / "b.duckdb"
    path.write_bytes(b"\xef\xbb\xbf" + yaml.safe_dump(fake_job(num_samples=2)).encode())
    code, err = run_cli(path, db, capsys)
    assert code == 0, err
    assert query(db, "SELECT count(*) FROM done_seeds") == [(2,)]


def test_rows_record_the_library_versions_that_made_them(tmp_path):
    db = tmp_path / "v.duckdb"
    run_job(parse_job(fake_job(num_samples=3)), db=db)
    versions = [json.loads(v) for (v,) in query(db, "SELECT versions FROM reviews")]
    assert versions and all(v.get("factory") == "0.1.0" for v in versions)
    roles = {r for (r,) in query(db, "SELECT DISTINCT role FROM samples UNION SELECT DISTINCT role FROM reviews")}
    assert roles == {"generator", "reviewer"}
