"""A real job (tinystories on the fake backend, tests/fakes.py) in a real DuckDB file, made
once per session and copied per test, so each test may write its own labels."""
from __future__ import annotations

import shutil

import pytest

import factory  # noqa: F401 - the package first (a plain `import fakes` runs before it otherwise)
import fakes  # noqa: F401 - registers the "fake" backend

# three roles on the fake backend; the recipe's templates
JOB = {"name": "browse-job", "recipe": "tinystories", "num_samples": 16, "seed": 5, "reviewers": 3,
       "roles": {role: {"backend": "fake", "model": "fake", "template": f"tinystories/{role}@1"}
                 for role in ("generator", "reviewer", "adjudicator")},
       "execution": {"executor": "local", "batch_size": 8}}


@pytest.fixture(scope="session")
def made_db(tmp_path_factory):
    from factory.pipeline import run_job
    from factory.spec import parse_job

    path = tmp_path_factory.mktemp("browse") / "made.duckdb"
    result = run_job(parse_job(JOB), db=path)
    return path, result.job


@pytest.fixture
def job_db(made_db, tmp_path):
    """(a fresh copy of the job's database, the job's fingerprint)."""
    source, job = made_db
    path = tmp_path / "job.duckdb"
    shutil.copyfile(source, path)
    return path, job


def _query(db, sql: str, params=None) -> list[tuple]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


@pytest.fixture
def query():
    """query(db, sql, params): the rows, on a read-only connection closed at once."""
    return _query


@pytest.fixture
def ids(job_db):
    """The job's sample ids by seed index."""
    db, job = job_db
    return [r[0] for r in _query(db, "SELECT sample_id FROM samples WHERE job = ? ORDER BY seed_index", [job])]


@pytest.fixture
def client(job_db):
    """The browse app on job_db through Starlette's TestClient at 127.0.0.1:8765 (the test
    client's peer let in), labelling as "ann", redirects not followed."""
    from starlette.testclient import TestClient

    from factory.browse.app import make_app

    db, _ = job_db
    app = make_app(db, None, port=8765, labeller="ann", peers=("testclient",))
    with TestClient(app, base_url="http://127.0.0.1:8765", follow_redirects=False) as c:
        yield c
