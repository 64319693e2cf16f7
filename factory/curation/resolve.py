"""`factory curate JOB` and factory.api.curate: which database, job and curation settings a
pass uses, then the pass.

A job file (a YAML path, a dict, a JobSpec) brings its own settings, and the pass stores
them with the job. A name or fingerprint uses, in order: the settings stored with the job
(jobs.curation), else those of the job's last pass (curation_runs.config: databases from
before m006), else the defaults. So curating by name gives what curating the YAML gave.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from factory.curation.run import curate
from factory.spec import CurationSpec, JobSpec, one_line_error, spec_of
from stores import Store, StoreError
from stores.curation import job_curation, last_pass_config
from stores.stats import UnknownJob, resolve_job

DEFAULT_DB = JobSpec.model_fields["db"].default

# Where a pass's settings came from: the result's "settings" and the line the CLI prints.
SETTINGS = {
    "job file": "the job file's (now stored with the job)",
    "stored with the job": "stored with the job (from its latest YAML)",
    "last curation pass": "the job's last curation pass's (none stored with the job)",
    "defaults": "the defaults (none stored with the job, no earlier curation pass)",
}


def _stored(raw: dict, where: str) -> CurationSpec:
    try:
        return CurationSpec.model_validate(raw)
    except ValidationError as err:
        raise ValueError(one_line_error(where, err, CurationSpec)) from None


def _settings(store: Store, job: str) -> tuple[str, CurationSpec]:
    _, stored = job_curation(store, job)
    if stored is not None:
        return "stored with the job", _stored(stored, f"jobs.curation of job {job}")
    last = last_pass_config(store, job)
    if last is not None:
        return "last curation pass", _stored(last, f"curation_runs.config of job {job}")
    return "defaults", CurationSpec()


def curate_job(job: str | Path | dict | JobSpec, db: str | Path | None = None, address: str | None = None) -> dict:
    """One curation pass; returns its summary (what curation_runs.summary holds) with the
    job's fingerprint, the database and where the settings came from ("settings")."""
    spec = spec_of(job)
    db = Path(db or (spec.db if spec else DEFAULT_DB))
    if not db.exists():
        raise StoreError(f"no database at {db}: run the job first, or pass --db")
    with Store(db) as store:
        if spec is not None:
            if store.existing_job([spec.fingerprint]) is None:
                raise UnknownJob(f"job {spec.name} ({spec.fingerprint}) is not in {db}: run it first")
            fingerprint, source, config = spec.fingerprint, "job file", spec.curation
        else:
            try:
                fingerprint = resolve_job(store, str(job))
            except UnknownJob as err:
                if str(job).endswith((".yaml", ".yml")):
                    raise UnknownJob(f"{job}: no such job file, and {err}") from None
                raise
            source, config = _settings(store, fingerprint)
        recipe, _ = job_curation(store, fingerprint)
        summary = curate(store, fingerprint, recipe, config, store_with_job=spec is not None, address=address)
    return {"job": fingerprint, "db": str(db), "settings": source, **summary}


def report_lines(result: dict) -> list[str]:
    """What `factory curate` prints: the settings used, the counts, and any flags removed."""
    counts = {k: v for k, v in result.items() if k not in ("job", "db", "settings", "contamination_change")}
    lines = [f"curation settings: {SETTINGS[result['settings']]}",
             f"curated job {result['job']} in {result['db']}: " + ", ".join(f"{k} {v}" for k, v in counts.items())]
    if "contamination_change" in result:
        lines.append(f"contamination: {result['contamination_change']}")
    return lines
