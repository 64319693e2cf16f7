"""Which job a probe reads: a job file (its spec, execution settings and endpoints), or a
name / fingerprint in the database (the spec stored with the job: the canonical spec, so
execution takes the defaults and remote endpoints, never stored, must come from the YAML)."""
from __future__ import annotations

from pathlib import Path

from factory.spec import JobError, JobSpec, known_fingerprints, parse_job
from stores import StoreError
from stores.jobs import job_row
from stores.stats import UnknownJob, resolve_job

DEFAULT_DB = JobSpec.model_fields["db"].default


def database(spec: JobSpec | None, db) -> Path:
    path = Path(db or (spec.db if spec else DEFAULT_DB))
    if not path.exists():
        raise StoreError(f"no database at {path}: run the job first, or pass --db")
    return path


def stored_spec(store, fingerprint: str) -> JobSpec:
    """The spec stored with a job, checked again (its recipe found, its templates loaded).
    store: a stores.Store."""
    row = job_row(store, fingerprint)
    name = row["name"]
    data = {**row["spec"], "name": name, "num_samples": row["num_samples"], "recipe": row["recipe"]}
    data.pop("files", None)  # the user files' hashes (JobSpec.user_files): read again from the files
    try:
        return parse_job(data, source=f"the spec stored with job {name} ({fingerprint})")
    except JobError as err:
        raise JobError(f"{err} (pass the job's YAML file instead of its name)") from None


def resolve(store, job, spec: JobSpec | None) -> tuple[str, JobSpec]:
    """(the job's fingerprint in this database, its spec). store: a stores.Store."""
    if spec is not None:
        found = store.existing_job(known_fingerprints(spec))
        if found is None:
            raise UnknownJob(f"job {spec.name} ({spec.fingerprint}) is not in {store.path}: run it first")
        return found, spec
    try:
        fingerprint = resolve_job(store, None if job is None else str(job))
    except UnknownJob as err:
        if str(job).endswith((".yaml", ".yml")):
            raise UnknownJob(f"{job}: no such job file, and {err}") from None
        raise
    return fingerprint, stored_spec(store, fingerprint)
