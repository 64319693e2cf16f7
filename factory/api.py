"""The public Python API: `import factory` and call these."""
from __future__ import annotations

from pathlib import Path

from factory.pipeline import RunResult, run_job
from factory.spec import JobSpec, load_job, parse_job
from stores import open_database
from stores.stats import job_stats


def run(job: str | Path | dict | JobSpec, db: str | Path | None = None, limit: int | None = None,
        address: str | None = None, progress=None) -> RunResult:
    """Run (or resume) a job from a YAML path, a dict or a JobSpec."""
    if isinstance(job, dict):
        spec = parse_job(job)
    elif isinstance(job, JobSpec):
        spec = job
    else:
        spec = load_job(job)
    return run_job(spec, db=db, limit=limit, address=address, progress=progress)


def stats(db: str | Path, job: str | None = None) -> dict:
    con = open_database(db, read_only=True)
    try:
        return job_stats(con, job)
    finally:
        con.close()


def sql(query: str, db: str | Path) -> list[dict]:
    """A read-only query; rows as dicts."""
    con = open_database(db, read_only=True)
    try:
        cur = con.execute(query)
        columns = [d[0] for d in cur.description]
        return [dict(zip(columns, row)) for row in cur.fetchall()]
    finally:
        con.close()
