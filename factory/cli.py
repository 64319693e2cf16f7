"""The `factory` command, one verb a subcommand (factory/api.py is the same verbs in Python);
errors are one line, never a traceback.

Verbs (`factory VERB --help` for the options):
  make data      run JOB.yaml          run or resume a job
                 curate JOB            near and semantic dedup, decontamination, quality scores
  look at it     stats [JOB]           the funnel, score histograms, agreement, tokens
                 sql "SELECT ..."      one read-only, bounded query
                 explain SAMPLE_ID     the whole story of one sample
                 preview JOB           every role's messages for the first seeds (--run: run them, store nothing)
                 report [JOB]          one self-contained HTML quality report
                 browse [JOB]          a local web page over the samples, with human labelling
                 label import FILE     human labels made elsewhere (CSV/JSONL)
                 probe JOB             can the judge tell good from bad?
  take it out    export [JOB]          the accepted view as parquet, jsonl or a HF dataset
  distill        distill SPEC.yaml     train students on mixtures of a job's solutions, evaluate them
                 runs                  compare the distillation runs
  around them    jobs                  the jobs in a database
                 recipes               every recipe found, built-in and plugins
                 init NAME             a working job file and a one-file recipe to start from

Exit codes: 0 ok; 1 a runtime problem (database busy, model package missing, server
unreachable, unknown job); 2 an invalid job file or command line (nothing written);
3 stopped at a token budget (committed work kept; rerun with a higher cap to resume).
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import re
import sys
from pathlib import Path

from rich.console import Console

from factory.backends import MissingPackage
from factory.calls import BudgetExceeded
from factory.literal_console import LiteralConsole, visible
from factory.plugins import PluginError
from factory.spec import JobError, load_job
from roles.templates import TemplateError
from stores import StoreError, open_database
from stores.stats import UnknownJob, job_stats

DEFAULT_DB = "factory.duckdb"
# What an invalid job, plugin or template raises: exit 2, one line, nothing written (a test
# makes each of them and checks that no database file appears).
INVALID_INPUT = (JobError, PluginError, TemplateError)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="factory", description="synthetic data factory")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run or resume a job")
    run.add_argument("job", help="job YAML file")
    run.add_argument("--limit", type=int, help="process only the first N seeds (a rerun without it continues)")
    run.add_argument("--db", help="DuckDB file (default: the job's db field)")
    run.add_argument("--address", help="Ray cluster address to join (default: start a local Ray)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    stats = sub.add_parser("stats", help="dataset quality stats of a job")
    stats.add_argument("job", nargs="?", help="job name or fingerprint (optional when the db holds one job)")
    stats.add_argument("--db", default=DEFAULT_DB)
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    stats.add_argument("--exact", action="store_true", help="compute from the rows, not the per-job summaries")
    curate = sub.add_parser("curate", help="near and semantic dedup, decontamination, quality scores")
    curate.add_argument("job", help="job YAML (its curation section), or a job name / fingerprint in the db")
    curate.add_argument("--db", help="DuckDB file (default: the job's db field, else factory.duckdb)")
    curate.add_argument("--address", help="Ray cluster address: MinHash, embeddings and n-grams run on its "
                        "workers (same result; default: all in this process)")
    probe = sub.add_parser("probe", help="can the judge tell good from bad? corrupted accepted samples, scored")
    probe.add_argument("job", help="job YAML, or a job name / fingerprint in the db")
    probe.add_argument("--db", help="DuckDB file (default: the job's db field, else factory.duckdb)")
    probe.add_argument("--samples", type=int, default=12, help="accepted samples to corrupt (default 12)")
    probe.add_argument("--seed", type=int, default=0, help="seed of the sample choice and the corruptions")
    probe.add_argument("--kinds", help="comma-separated corruption kinds (default: all the recipe declares)")
    probe.add_argument("--json", action="store_true", help="the summary as JSON")
    probe.add_argument("--gold", action="store_true", help="compare every signal and the verdict with the human "
                       "labels instead (read-only, no model call)")
    explain = sub.add_parser("explain", help="the whole story of one sample")
    explain.add_argument("sample_id", help="a sample id (or a unique prefix)")
    explain.add_argument("--db", default=DEFAULT_DB)
    explain.add_argument("--json", action="store_true")
    preview = sub.add_parser("preview", help="every role's rendered messages for the first seeds, no model call; "
                             "--run runs them and shows outputs, gates and verdicts, writing nothing to the job's db")
    preview.add_argument("job", help="a job YAML file")
    preview.add_argument("--n", type=int, default=3, help="how many seeds (default 3)")
    preview.add_argument("--run", action="store_true", help="run them through the job's pipeline in a temporary db")
    preview.add_argument("--address", default=None, help="with --run: a Ray cluster to join")
    preview.add_argument("--json", action="store_true")
    export = sub.add_parser("export", help="export a job's accepted view")
    export.add_argument("job", nargs="?", help="job name or fingerprint (optional when the db holds one job)")
    export.add_argument("--db", default=DEFAULT_DB)
    export.add_argument("--format", help="parquet (default), jsonl or hf; with --labels: jsonl (default) or csv")
    export.add_argument("-o", "--out", required=True, help="output directory (new or empty)")
    export.add_argument("--labels", action="store_true", help="the human labels instead (OUT/labels.jsonl or .csv; "
                        "--format jsonl or csv, default jsonl; all jobs unless JOB is given)")
    report = sub.add_parser("report", help="one self-contained HTML quality report of a job")
    report.add_argument("job", nargs="?", help="job name or fingerprint (optional when the db holds one job)")
    report.add_argument("--db", default=DEFAULT_DB)
    report.add_argument("-o", "--out", default="report.html", help="HTML file to write")
    distill = sub.add_parser("distill", help="train students on mixtures of a job's solutions and evaluate them")
    distill.add_argument("spec", help="distillation YAML file")
    distill.add_argument("--db", help="DuckDB file (default: the spec's db field)")
    distill.add_argument("--quiet", action="store_true", help="no progress lines")
    distill.add_argument("--address", help="Ray cluster address: training.workers > 1 train there "
                         "(default: the cluster RAY_ADDRESS names, else a local Ray)")
    runs = sub.add_parser("runs", help="compare the distillation runs (which mixture trained the best student)")
    runs.add_argument("distill", nargs="?", help="a distillation name (default: all)")
    runs.add_argument("--db", default=DEFAULT_DB)
    runs.add_argument("--json", action="store_true", help="runs as JSON lines")
    label = sub.add_parser("label", help="human labels: import a CSV/JSONL of labels made elsewhere")
    label_sub = label.add_subparsers(dest="label_command", required=True)
    label_import = label_sub.add_parser("import", help="store the labels of a .jsonl or .csv file (all or none)")
    label_import.add_argument("file", help="labels: sample_id, labeller, decision (accept|reject), scores, note")
    label_import.add_argument("--db", default=DEFAULT_DB)
    label_import.add_argument("--labeller", help="the labeller of rows that name none")
    browse = sub.add_parser("browse", help="a local web page over the samples, with human labelling")
    browse.add_argument("job", nargs="?", help="job name or fingerprint (default: every job)")
    browse.add_argument("--db", default=DEFAULT_DB)
    browse.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765)")
    browse.add_argument("--labeller", help="the name labels are stored under (default: the login name)")
    sub.add_parser("recipes", help="every recipe found (built-in and plugins), its roles, options and origin")
    jobs = sub.add_parser("jobs", help="the jobs in a database: name, fingerprint, recipe, created, counts")
    jobs.add_argument("--db", default=DEFAULT_DB)
    jobs.add_argument("--json", action="store_true", help="jobs as JSON lines")
    init = sub.add_parser("init", help="write a working job file and a one-file recipe to start from")
    init.add_argument("name", help="lowercase name of the new recipe and job")
    init.add_argument("--dir", default=".", help="folder to write into (default: here)")
    sql = sub.add_parser("sql", help="run a read-only SQL query")
    sql.add_argument("query")
    sql.add_argument("--db", default=DEFAULT_DB)
    sql.add_argument("--json", action="store_true", help="rows as JSON lines")
    sql.add_argument("--timeout", default="30", help="seconds before the query is stopped (default 30)")
    sql.add_argument("--memory-limit", help="DuckDB memory for the query, e.g. 2GB (default a quarter of the "
                     "machine; nothing spills to disk)")
    return p


def _reading(db: str, read):
    """read(con) on a read-only connection that is closed whatever happens."""
    con = open_database(db, read_only=True)
    try:
        return read(con)
    finally:
        con.close()


def _run(args, out: Console, err: Console) -> int:
    from factory.pipeline import run_job
    from factory.progress import RichProgress

    spec = load_job(args.job)  # JobError -> exit 2 before anything is written
    if args.limit is not None and args.limit < 1:
        raise JobError(f"--limit: must be >= 1 (got {args.limit})")
    db = args.db or spec.db
    progress = None if args.quiet else RichProgress(err)
    result = run_job(spec, db=db, limit=args.limit, address=args.address, progress=progress)
    if result.seeds_processed == 0:
        err.print(f"job {spec.name} ({result.job}): all {result.seeds_done_before} seeds already done, no model calls",
                  soft_wrap=True)
    else:
        err.print(f"job {spec.name} ({result.job}): {result.seeds_processed} seeds processed "
                  f"({result.seeds_done_before} done before), {result.model_calls} model calls, db {db}", soft_wrap=True)
    from factory.render import print_all, stats_tables

    print_all(out, stats_tables(_reading(db, lambda con: job_stats(con, result.job))))
    return 0


def _stats(args, out: Console, err: Console) -> int:
    from factory.api import stats as read_stats

    stats = read_stats(args.db, args.job, exact=args.exact)  # while a run writes the db: its snapshot, and a line saying so
    if args.json:
        print(json.dumps(stats, indent=2, sort_keys=True))
    else:
        from factory.render import print_all, stats_tables

        print_all(out, stats_tables(stats))
        if stats.get("probe"):  # the latest `factory probe` of the job
            from factory.probing.render import stats_line

            out.print(stats_line(stats["probe"]), soft_wrap=True)
        if (line := _gold_headline(args.db, stats["job"])) is not None:
            out.print(line, soft_wrap=True)
    return 0


def _gold_headline(db: str, job: str) -> str | None:
    """The --gold headline for stats when the job has labels (a few hundred rows: cheap);
    not in --json, whose keys describe the job's own rows."""
    from factory.probing.gold import gold
    from factory.probing.render import gold_line
    from stores.labels import label_count
    from stores.snapshot import open_for_reading

    con = open_for_reading(db)
    try:
        return gold_line(gold(con, job)) if label_count(con, job) else None
    finally:
        con.close()


def _sql(args, out: Console, err: Console) -> int:
    import duckdb

    from stores.query_limits import checked_memory_limit, checked_timeout
    from stores.read_only_sql import RefusedStatement, run_read_only

    try:
        timeout, memory_limit = checked_timeout(args.timeout), checked_memory_limit(args.memory_limit)
    except ValueError as e:  # a bad --timeout or --memory-limit: bad input
        _error(str(e))
        return 2

    def stuck(line: str) -> None:  # a query that ignores the interrupt: end the process, with the line
        _error(line)
        sys.stdout.flush()
        os._exit(1)

    try:
        columns, rows = run_read_only(args.db, args.query, timeout=timeout, memory_limit=memory_limit,
                                      on_stuck=stuck)  # past a limit: QueryLimit, one line, exit 1 (main)
    except RefusedStatement as e:  # a write, several statements, a file other than the database
        _error(str(e))
        return 2
    except duckdb.Error as e:  # a read that fails: a typo, an unknown table
        _error(str(e).splitlines()[0])
        return 1
    if args.json:
        for row in rows:
            print(json.dumps(dict(zip(columns, row)), default=str))
    else:
        from factory.render import query_table

        out.print(query_table(columns, rows))
    return 0


def _curate(args, out: Console, err: Console) -> int:
    from factory.curation.resolve import curate_job, report_lines

    for line in report_lines(curate_job(args.job, args.db, args.address)):  # the same path as factory.api.curate
        err.print(line, soft_wrap=True)
    return 0


@contextlib.contextmanager
def _warnings_as_lines():
    """An UncuratedWarning raised inside prints at once as one plain `warning: ...` line on
    stderr (not Python's `file:line: UncuratedWarning:` form); other warnings as usual."""
    import warnings

    from factory.api import UncuratedWarning

    with warnings.catch_warnings():  # restores the filters and showwarning on exit
        warnings.simplefilter("always", UncuratedWarning)
        python_default = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, UncuratedWarning):
                print(f"warning: {message}", file=sys.stderr)
            else:
                python_default(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def _probe(args, out: Console, err: Console) -> int:
    from factory.api import probe
    from factory.probing.render import headline, tables

    if args.gold:
        return _probe_gold(args, out)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()] if args.kinds else None
    summary = probe(args.job, args.db, samples=args.samples, seed=args.seed, kinds=kinds,
                    say=lambda line: err.print(line, soft_wrap=True))
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    for table in tables(summary):
        out.print(table)
    out.print(headline(summary), soft_wrap=True)
    return 0


def _gold_job(con, job: str) -> str:
    """A job YAML's fingerprint in this database, or a name / fingerprint resolved."""
    from stores.stats import UnknownJob, resolve_job

    if job.endswith((".yaml", ".yml")) and Path(job).is_file():
        spec = load_job(job)
        found = {r[0] for r in con.execute("SELECT fingerprint FROM jobs").fetchall()}
        for fingerprint in (spec.fingerprint, *spec.legacy_fingerprints()):
            if fingerprint in found:
                return fingerprint
        raise UnknownJob(f"job {spec.name} ({spec.fingerprint}) is not in the database: run it first")
    return resolve_job(con, job)


def _probe_gold(args, out: Console) -> int:
    from factory.probing.gold import gold
    from factory.probing.render import gold_line, gold_tables
    from stores.snapshot import open_for_reading

    db = args.db or (load_job(args.job).db if args.job.endswith((".yaml", ".yml")) and Path(args.job).is_file()
                     else DEFAULT_DB)
    con = open_for_reading(db)  # while a run writes db: its snapshot, and a line saying so
    try:
        summary = gold(con, _gold_job(con, args.job))
    finally:
        con.close()
    if not summary["labels"]:
        raise LookupError(f"job {args.job} has no human labels in {db}: label samples with factory browse, "
                          "or factory label import FILE")
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    for table in gold_tables(summary):
        out.print(table)
    out.print(gold_line(summary), soft_wrap=True)
    return 0


def _preview(args, out: Console, err: Console) -> int:
    from factory.preview import preview, preview_text

    spec = load_job(args.job)  # JobError -> exit 2
    if args.n < 1:
        raise JobError(f"--n: must be >= 1 (got {args.n})")
    entries = preview(spec, args.n, run=args.run, address=args.address)
    if args.json:
        print(json.dumps(entries, indent=2, sort_keys=True, default=str))
    else:
        out.print(preview_text(entries), soft_wrap=True, highlight=False)
    return 0


def _explain(args, out: Console, err: Console) -> int:
    from factory.api import explain

    story = explain(args.sample_id, args.db)
    if args.json:
        print(json.dumps(story, indent=2, default=str))
    else:
        from factory.render import explain_view

        out.print(explain_view(story))
    return 0


def _export(args, out: Console, err: Console) -> int:
    from factory.api import export

    if args.labels:
        return _export_labels(args, err)
    with _warnings_as_lines():
        result = export(args.db, args.job, out=args.out, format=args.format or "parquet")
    err.print(f"exported {result['rows']} rows as {result['format']} to {result['path']}")
    return 0


def _export_labels(args, err: Console) -> int:
    from factory.labels import export_labels
    from stores.labels import LabelError
    from stores.snapshot import open_for_reading
    from stores.stats import resolve_job

    con = open_for_reading(args.db)
    try:
        job = None if args.job is None else resolve_job(con, args.job)
        result = export_labels(con, job, args.out, args.format or "jsonl")
    except LabelError as e:  # a bad --format, an existing labels file: nothing written
        _error(str(e))
        return 2
    finally:
        con.close()
    err.print(f"exported {result['rows']} labels as {result['format']} to {result['path']}")
    return 0


def _label(args, out: Console, err: Console) -> int:
    from factory.labels import import_labels
    from stores.labels import LabelError

    try:
        n = import_labels(args.db, args.file, args.labeller)
    except LabelError as e:  # a bad row, an unknown sample, no such file: nothing stored
        _error(str(e))
        return 2
    err.print(f"stored {n} labels from {args.file} in {args.db}")
    return 0


def _browse(args, out: Console, err: Console) -> int:
    from factory.browse.serve import serve

    if not 0 < args.port < 65536:
        _error(f"--port must be 1-65535 (got {args.port})")
        return 2
    return serve(args.db, args.job, port=args.port, labeller=args.labeller,
                 say=lambda line: err.print(line, soft_wrap=True))


def _report(args, out: Console, err: Console) -> int:
    from factory.api import report

    path = report(args.db, args.job, out=args.out)
    err.print(f"wrote {path}")
    return 0


def _distill(args, out: Console, err: Console) -> int:
    from factory.api import distill
    from factory.distill.progress import RichDistillProgress
    from factory.distill.spec import load_distill

    spec = load_distill(args.spec)  # JobError -> exit 2, nothing written
    db = args.db or spec.db
    with _warnings_as_lines():
        summaries = distill(spec, db=db, progress=None if args.quiet else RichDistillProgress(err),
                            address=args.address)
    for s in summaries:
        err.print(f"{s.mixture}: {s.status}, {s.rows} rows, {s.metric} "
                  f"{'-' if s.value is None else f'{s.value:.3f}'} (run {s.run_id[:10]})", soft_wrap=True)
    return _runs(argparse.Namespace(db=db, distill=spec.name, json=False), out, err)


def _runs(args, out: Console, err: Console) -> int:
    from factory.api import runs as finished_runs
    from factory.distill.compare import (accuracy_comparisons, heldout_comparisons, heldout_table,
                                         latest_per_mixture, runs_table, verdict)

    runs = finished_runs(args.db, args.distill)
    if args.json:
        for r in runs:
            print(json.dumps(r, default=str))
        return 0
    if not runs:
        err.print(f"no finished runs{' of ' + args.distill if args.distill else ''} in {args.db}")
        return 0
    for name, latest in latest_per_mixture(runs).items():
        out.print(runs_table(name, latest))
        if (held := heldout_table(name, latest)) is not None:  # stories: held-out loss, teacher likelihood
            out.print(held)
        out.print(verdict(latest), soft_wrap=True)
    latest = latest_per_mixture(runs)
    for line in heldout_comparisons(latest) + accuracy_comparisons(latest):  # distillations on the same items
        out.print(line, soft_wrap=True)
    return 0


def _recipes(args, out: Console, err: Console) -> int:
    from factory.api import recipes
    from factory.render import recipes_table

    out.print(recipes_table(recipes()))
    return 0


def _jobs(args, out: Console, err: Console) -> int:
    from factory.api import jobs
    from factory.render import query_table

    found = jobs(args.db)
    if args.json:
        for j in found:
            print(json.dumps(j, default=str))
        return 0
    columns = ["name", "job", "recipe", "created_at", "seeds_done", "samples", "accepted"]
    out.print(query_table(columns, [tuple(j[c] for c in columns) for j in found]))
    return 0


def _init(args, out: Console, err: Console) -> int:
    from factory.api import init

    made = init(args.name, args.dir)
    err.print("wrote " + ", ".join(made["files"]) + f"\nrun it: factory run {made['job']}", soft_wrap=True)
    return 0


def _error(message: str) -> None:
    # plain print, not rich: an error must stay one line whatever the terminal width; a
    # message can quote stored text (a failed cast of a value): its escapes made visible
    print(f"error: {visible(message)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # stored text (query rows, sample texts, names) is printed as stored: no markup, no
    # terminal escapes (issue 23 B); the CLI's own emphasis is rich styles, not markup
    out, err = LiteralConsole(), LiteralConsole(stderr=True)
    handlers = {"run": _run, "stats": _stats, "sql": _sql, "curate": _curate, "explain": _explain, "export": _export,
                "report": _report, "distill": _distill, "runs": _runs, "recipes": _recipes, "jobs": _jobs, "init": _init,
                "probe": _probe, "label": _label, "browse": _browse, "preview": _preview}
    try:
        return handlers[args.command](args, out, err)
    except INVALID_INPUT as e:  # an invalid job, plugin or template: nothing written
        _error(str(e))
        return 2
    except BudgetExceeded as e:
        _error(f"stopped: {e}; committed batches are kept: raise the cap and rerun to continue")
        return 3
    except (StoreError, MissingPackage, UnknownJob, FileNotFoundError, FileExistsError, ValueError, LookupError,
            ConnectionError, RuntimeError) as e:
        _error(str(e))
        return 1
    except KeyboardInterrupt:
        err.print("interrupted: committed batches are kept; rerun the same command to resume")
        return 130
    except Exception as e:  # a full disk outside the store's batch writes (a checkpoint at close, a migration)
        if "No space left on device" not in str(e) and getattr(e, "errno", None) != errno.ENOSPC:
            raise
        named = re.search(r'"([^"]+)"', str(e)) or re.search(r"'([^']+)'", str(e))
        where = named.group(1) if named else getattr(args, "db", None) or "the database"
        _error(f"no space left on device writing {where}: free space and rerun to resume")
        return 1


if __name__ == "__main__":
    sys.exit(main())
