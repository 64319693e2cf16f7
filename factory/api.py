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


def curate(job: str | Path | dict | JobSpec, db: str | Path | None = None) -> dict:
    """One curation pass (what `factory curate` runs). job: a YAML path, a dict or a JobSpec
    (its curation settings are used and stored with the job), or a job name or fingerprint
    (the settings stored with the job, else its last pass's, else the defaults). db defaults
    to the spec's db, else factory.duckdb. Returns the pass's summary with "job", "db" and
    "settings" (where they came from); "contamination_change" says why flags were removed."""
    from factory.curation.resolve import curate_job

    return curate_job(job, db)


def sql(query: str, db: str | Path) -> list[dict]:
    """A read-only query; rows as dicts."""
    con = open_database(db, read_only=True)
    try:
        cur = con.execute(query)
        columns = [d[0] for d in cur.description]
        return [dict(zip(columns, row)) for row in cur.fetchall()]
    finally:
        con.close()
