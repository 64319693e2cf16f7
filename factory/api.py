"""The public Python API: `import factory` and call these."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from factory.pipeline import RunResult, run_job
from factory.spec import JobSpec, load_job, spec_of
from stores import open_database
from stores.snapshot import open_for_reading
from stores.curated import UncuratedWarning  # noqa: F401 - public: export and distill warn with it
from stores.stats import job_stats

if TYPE_CHECKING:  # torch comes with these: imported when distill() is called, not with the API
    from factory.distill.run import RunSummary
    from factory.distill.spec import DistillSpec


def run(job: str | Path | dict | JobSpec, db: str | Path | None = None, limit: int | None = None,
        address: str | None = None, progress=None) -> RunResult:
    """Run (or resume) a job from a YAML path, a dict or a JobSpec."""
    spec = spec_of(job) or load_job(job)  # a name is no file: load_job says "no such job file"
    return run_job(spec, db=db, limit=limit, address=address, progress=progress)


def stats(db: str | Path, job: str | None = None, exact: bool = False) -> dict:
    """What `stats --json` prints. While `factory run` writes db, its latest snapshot is read
    (stores/snapshot.py): one line on stderr says so, and the dict gains "snapshot":
    {"path", "taken_at" (ISO 8601, UTC), "writer_pid"}; the other keys are the same.
    exact: every number from the rows instead of the job's summaries (the same numbers)."""
    def read(con) -> dict:
        found = job_stats(con, job, exact=exact)
        return found if con.snapshot is None else {**found, "snapshot": con.snapshot.as_dict()}

    return _reading(db, read, snapshot_ok=True)


def curate(job: str | Path | dict | JobSpec, db: str | Path | None = None, address: str | None = None) -> dict:
    """One curation pass (what `factory curate` runs). job: a YAML path, a dict or a JobSpec
    (its curation settings are used and stored with the job), or a job name or fingerprint
    (the settings stored with the job, else its last pass's, else the defaults). db defaults
    to the spec's db, else factory.duckdb. Returns the pass's summary with "job", "db" and
    "settings" (where they came from); "contamination_change" says why flags were removed.
    address: a Ray cluster's; the per-text work runs on its workers, same result."""
    from factory.curation.resolve import curate_job

    return curate_job(job, db, address)


def probe(job: str | Path | dict | JobSpec, db: str | Path | None = None, samples: int = 12, seed: int = 0,
          kinds: list[str] | None = None, say=None) -> dict:
    """Can the job's judge tell good from bad? (what `factory probe` runs). job: a YAML path,
    a dict, a JobSpec, or a job name / fingerprint in db. Up to `samples` accepted samples
    (chosen by seed; all of them when fewer, with a note) are corrupted in the ways the
    recipe declares and scored by every signal the job uses. Returns the summary stored in
    probe_runs: "pairwise_accuracy" (the decision score over all kinds, with
    "pairwise_accuracy_ci"), "by_kind", "by_signal", "notes", "run_id". say(line) receives
    progress lines; kinds: only these corruption kinds (default: all the recipe declares).
    No accepted sample: factory.probing.run.NothingToProbe (a LookupError)."""
    from factory.probing.run import probe_job

    return probe_job(job, db, samples=samples, seed=seed, kinds=kinds, say=say)


def _reading(db: str | Path, read, snapshot_ok: bool = False):
    """read(con) on a read-only connection that is closed whatever happens. snapshot_ok:
    while a run writes db, read its snapshot instead of failing with "in use"."""
    con = open_for_reading(db) if snapshot_ok else open_database(db, read_only=True)
    try:
        return read(con)
    finally:
        con.close()


def explain(sample_id: str, db: str | Path) -> dict:
    """The whole story of one sample (an id or a unique prefix): seed, job, generation,
    reviews, verdict, curation; what `factory explain --json` prints."""
    from factory.explain import explain as story

    return _reading(db, lambda con: story(con, sample_id))


def export(db: str | Path, job: str | None = None, *, out: str | Path, format: str = "parquet") -> dict:
    """The job's accepted view as parquet, jsonl or hf into `out` (a new or empty directory),
    with a dataset card: {"rows", "format", "path"}. Warns (UncuratedWarning) when the job
    was never curated."""
    from factory.export import export as write

    result = _reading(db, lambda con: write(con, job, format, out))
    return {**result, "path": Path(result["path"])}


def report(db: str | Path, job: str | None = None, out: str | Path = "report.html") -> Path:
    """One self-contained HTML quality report of the job, written to `out`."""
    from factory.report import write_report

    return Path(_reading(db, lambda con: write_report(con, job, out)))


def _distill_spec(spec) -> DistillSpec:
    from pydantic import ValidationError

    from factory.distill.spec import DistillSpec, load_distill
    from factory.spec import JobError, one_line_error

    if isinstance(spec, DistillSpec):
        return spec
    if isinstance(spec, dict):
        try:
            return DistillSpec.model_validate(spec)
        except ValidationError as err:
            raise JobError(one_line_error("<distill>", err, DistillSpec)) from None
    if isinstance(spec, (str, Path)):
        return load_distill(spec)
    raise TypeError(f"distill spec: expected a YAML path, a dict or a DistillSpec (got {type(spec).__name__})")


def distill(spec, db: str | Path | None = None, progress=None, address: str | None = None) -> list[RunSummary]:
    """Train and evaluate a student per mixture (resumable; finished runs are not trained
    again). spec: a distill YAML path, a dict or a DistillSpec; db defaults to spec.db;
    address: the Ray cluster whose workers train when training.workers > 1.
    Warns (UncuratedWarning) when source.use is accepted and the source job was never curated."""
    from factory.distill.run import run_distill

    return run_distill(_distill_spec(spec), db=db, progress=progress, address=address)


def runs(db: str | Path, distill: str | None = None) -> list[dict]:
    """Finished distillation runs (of one distillation, or all), oldest first, JSON decoded."""
    from stores.distill import list_runs

    return _reading(db, lambda con: list_runs(con, distill))


def sql_rows(query: str, db: str | Path, timeout: float = 30.0, memory_limit: str | None = None,
             on_stuck=None) -> tuple[list[str], list[tuple]]:
    """(column names, rows as tuples) of one read-only statement: what `factory sql` prints,
    columns kept when no row comes back. on_stuck(line): called when a query ignores the
    interrupt at its limit (the CLI ends the process there). Errors as sql()'s, and the
    duckdb.Error of a read that fails (a typo, an unknown table)."""
    from stores.read_only_sql import run_read_only

    return run_read_only(db, query, timeout=timeout, memory_limit=memory_limit, on_stuck=on_stuck)


def sql(query: str, db: str | Path, timeout: float = 30.0, memory_limit: str | None = None) -> list[dict]:
    """One statement that reads (SELECT, WITH, DESCRIBE, SHOW, EXPLAIN, SUMMARIZE); rows as
    dicts. Anything else, several statements or a file other than the database raise
    stores.read_only_sql.RefusedStatement (a ValueError) with one line saying why. Past
    `timeout` seconds or `memory_limit` (a DuckDB size such as "2GB"; default a quarter of
    the machine; never a spill to disk): stores.query_limits.QueryLimit, one line naming it."""
    columns, rows = sql_rows(query, db, timeout=timeout, memory_limit=memory_limit)
    return [dict(zip(columns, row)) for row in rows]


def recipes() -> list[dict]:
    """Every recipe found (built-ins and plugins): name, description, roles with their
    default templates, options, and where it came from."""
    from factory.recipes.registry import all_recipes

    return [r.describe() for r in all_recipes()]


def jobs(db: str | Path) -> list[dict]:
    """The jobs in a database: name, fingerprint, recipe, created, seeds done, samples, accepted."""
    from stores.stats import list_jobs

    return _reading(db, list_jobs)


def init(name: str, directory: str | Path = ".") -> dict:
    """Write a working job file, a one-file recipe and its templates to start from."""
    from factory.scaffold import init as write

    return write(name, directory)


def preview(job: str | Path | dict | JobSpec, n: int = 3, run: bool = False, address: str | None = None) -> list[dict]:
    """Every role's rendered messages for the job's first n seeds, no model call (what
    `factory preview` prints); run=True runs them through the job's pipeline in a temporary
    database and adds each sample's story and the seed's drops. The job's db is not touched."""
    from factory.preview import preview as entries

    spec = spec_of(job) or load_job(job)
    return entries(spec, n, run=run, address=address)


def gold(job: str | Path, db: str | Path | None = None) -> dict:
    """Every signal and the verdict compared with the human labels of a job (what `factory
    probe --gold` prints; read-only, no model call). job: a YAML path, or a job name /
    fingerprint in db; db defaults to the YAML's db, else factory.duckdb. No label:
    factory.probing.gold.NoLabels (a LookupError)."""
    from factory.probing.gold import NoLabels, gold as compare, labelled_job

    if db is None:
        db = load_job(job).db if _is_job_file(job) else JobSpec.model_fields["db"].default
    summary = _reading(db, lambda con: compare(con, labelled_job(con, str(job))), snapshot_ok=True)
    if not summary["labels"]:
        raise NoLabels(f"job {job} has no human labels in {db}: label samples with factory browse, "
                       "or factory label import FILE")
    return summary


def _is_job_file(job) -> bool:
    return str(job).endswith((".yaml", ".yml")) and Path(job).is_file()


def import_labels(db: str | Path, file: str | Path, labeller: str | None = None) -> int:
    """Every label of a .jsonl or .csv file into db (all or none: stores.labels.LabelError
    names the first bad row); labeller names rows that name none. Returns the labels stored."""
    from factory.labels import import_labels as store

    return store(db, file, labeller)


def export_labels(db: str | Path, job: str | None = None, *, out: str | Path, format: str = "jsonl") -> dict:
    """The human labels (of one job, or all) as OUT/labels.jsonl or .csv: {"rows", "format",
    "path"}. A bad format or an existing file: stores.labels.LabelError, nothing written."""
    from factory.labels import export_labels as write
    from stores.stats import resolve_job

    return _reading(db, lambda con: write(con, None if job is None else resolve_job(con, job), out, format),
                    snapshot_ok=True)


def browse(db: str | Path, job: str | None = None, port: int = 8765, labeller: str | None = None, say=print) -> int:
    """Serve a local web page over the samples, with human labelling, on 127.0.0.1:port
    until interrupted; labeller defaults to the login name. say(line) receives the address."""
    from factory.browse.serve import serve

    return serve(db, job, port=port, labeller=labeller, say=say)
