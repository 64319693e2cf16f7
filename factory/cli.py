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

Exit codes (each error class declares its own `exit_code`): 0 ok; 1 a runtime problem
(database busy, model package missing, server unreachable, unknown job); 2 an invalid job
file or command line (nothing written); 3 stopped at a token budget (committed work kept;
rerun with a higher cap to resume).
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import re
import sys

from rich.console import Console

from factory import api
from factory.calls import BudgetExceeded
from factory.literal_console import LiteralConsole, visible
from factory.plugins import PluginError
from factory.spec import JobError, load_job
from roles.templates import TemplateError

DEFAULT_DB = "factory.duckdb"
# What loading an invalid job, plugin or template raises (exit_code 2): one line, nothing
# written (tests/cli/test_invalid_job_writes_nothing.py makes each and checks that no file appears).
INVALID_INPUT = (JobError, PluginError, TemplateError)
# Python's own exceptions cannot carry an exit_code: what reaches the user as one of these
# (a missing file, a bad value a library raised) is a runtime problem, exit 1.
PYTHON_ERRORS = (FileNotFoundError, FileExistsError, ValueError, LookupError, ConnectionError, RuntimeError)


class UsageError(ValueError):
    """A command-line value out of range (--limit 0, --port 0); the message names the option."""
    exit_code = 2  # bad input, as an invalid job file: nothing written


class QueryFailed(RuntimeError):
    """A read `factory sql` ran that DuckDB could not do; the first line of DuckDB's message."""
    exit_code = 1  # a runtime problem, as a database that cannot be read


def exit_code(e: BaseException) -> int | None:
    """The exit code of an error shown as one line: its class's exit_code (every error class
    of factory/, stores/ and roles/ the CLI can show declares one: tests/cli/test_exit_codes.py),
    1 for Python's own; None for any other (main shows its traceback unless the disk is full)."""
    code = getattr(type(e), "exit_code", None)
    if isinstance(code, int):
        return code
    return 1 if isinstance(e, PYTHON_ERRORS) else None


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


def _run(args, out: Console, err: Console) -> int:
    from factory.progress import RichProgress
    from factory.render import print_all, stats_tables

    spec = load_job(args.job)  # JobError -> exit 2 before anything is written
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit: must be >= 1 (got {args.limit})")
    db = args.db or spec.db
    progress = None if args.quiet else RichProgress(err)
    result = api.run(spec, db=db, limit=args.limit, address=args.address, progress=progress)
    if result.seeds_processed == 0:
        err.print(f"job {spec.name} ({result.job}): all {result.seeds_done_before} seeds already done, no model calls",
                  soft_wrap=True)
    else:
        err.print(f"job {spec.name} ({result.job}): {result.seeds_processed} seeds processed "
                  f"({result.seeds_done_before} done before), {result.model_calls} model calls, db {db}", soft_wrap=True)
    print_all(out, stats_tables(api.stats(db, result.job)))
    return 0


def _stats(args, out: Console, err: Console) -> int:
    stats = api.stats(args.db, args.job, exact=args.exact)  # while a run writes the db: its snapshot, and a line saying so
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
    from factory.probing.gold import NoLabels
    from factory.probing.render import gold_line

    try:
        return gold_line(api.gold(job, db))
    except NoLabels:
        return None


def _sql(args, out: Console, err: Console) -> int:
    import duckdb

    def stuck(line: str) -> None:  # a query that ignores the interrupt: end the process, with the line
        _error(line)
        sys.stdout.flush()
        os._exit(1)

    try:  # a refused statement: exit 2; past a limit: QueryLimit, exit 1 (main)
        columns, rows = api.sql_rows(args.query, args.db, timeout=args.timeout, memory_limit=args.memory_limit,
                                     on_stuck=stuck)
    except duckdb.Error as e:  # a read that fails (a typo, an unknown table): its first line
        raise QueryFailed(str(e).splitlines()[0]) from None
    if args.json:
        for row in rows:
            print(json.dumps(dict(zip(columns, row)), default=str))
    else:
        from factory.render import query_table

        out.print(query_table(columns, rows))
    return 0


def _curate(args, out: Console, err: Console) -> int:
    from factory.curation.resolve import report_lines

    for line in report_lines(api.curate(args.job, args.db, args.address)):
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
    from factory.probing.render import headline, tables

    if args.gold:
        return _probe_gold(args, out)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()] if args.kinds else None
    summary = api.probe(args.job, args.db, samples=args.samples, seed=args.seed, kinds=kinds,
                        say=lambda line: err.print(line, soft_wrap=True))
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    for table in tables(summary):
        out.print(table)
    out.print(headline(summary), soft_wrap=True)
    return 0


def _probe_gold(args, out: Console) -> int:
    from factory.probing.render import gold_line, gold_tables

    summary = api.gold(args.job, args.db)  # while a run writes the db: its snapshot, and a line saying so
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    for table in gold_tables(summary):
        out.print(table)
    out.print(gold_line(summary), soft_wrap=True)
    return 0


def _preview(args, out: Console, err: Console) -> int:
    from factory.preview import preview_text

    spec = load_job(args.job)  # JobError -> exit 2
    if args.n < 1:
        raise UsageError(f"--n: must be >= 1 (got {args.n})")
    entries = api.preview(spec, args.n, run=args.run, address=args.address)
    if args.json:
        print(json.dumps(entries, indent=2, sort_keys=True, default=str))
    else:
        out.print(preview_text(entries), soft_wrap=True, highlight=False)
    return 0


def _explain(args, out: Console, err: Console) -> int:
    story = api.explain(args.sample_id, args.db)
    if args.json:
        print(json.dumps(story, indent=2, default=str))
    else:
        from factory.render import explain_view

        out.print(explain_view(story))
    return 0


def _export(args, out: Console, err: Console) -> int:
    if args.labels:  # a bad --format, an existing labels file: LabelError, exit 2, nothing written
        result = api.export_labels(args.db, args.job, out=args.out, format=args.format or "jsonl")
        err.print(f"exported {result['rows']} labels as {result['format']} to {result['path']}")
        return 0
    with _warnings_as_lines():
        result = api.export(args.db, args.job, out=args.out, format=args.format or "parquet")
    err.print(f"exported {result['rows']} rows as {result['format']} to {result['path']}")
    return 0


def _label(args, out: Console, err: Console) -> int:
    n = api.import_labels(args.db, args.file, args.labeller)  # a bad row, an unknown sample: LabelError, exit 2
    err.print(f"stored {n} labels from {args.file} in {args.db}")
    return 0


def _browse(args, out: Console, err: Console) -> int:
    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be 1-65535 (got {args.port})")
    return api.browse(args.db, args.job, port=args.port, labeller=args.labeller,
                      say=lambda line: err.print(line, soft_wrap=True))


def _report(args, out: Console, err: Console) -> int:
    path = api.report(args.db, args.job, out=args.out)
    err.print(f"wrote {path}")
    return 0


def _distill(args, out: Console, err: Console) -> int:
    from factory.distill.progress import RichDistillProgress
    from factory.distill.spec import load_distill

    spec = load_distill(args.spec)  # JobError -> exit 2, nothing written
    db = args.db or spec.db
    with _warnings_as_lines():
        summaries = api.distill(spec, db=db, progress=None if args.quiet else RichDistillProgress(err),
                                address=args.address)
    for s in summaries:
        err.print(f"{s.mixture}: {s.status}, {s.rows} rows, {s.metric} "
                  f"{'-' if s.value is None else f'{s.value:.3f}'} (run {s.run_id[:10]})", soft_wrap=True)
    _show_runs(api.runs(db, spec.name), db, spec.name, out, err)
    return 0


def _runs(args, out: Console, err: Console) -> int:
    runs = api.runs(args.db, args.distill)
    if args.json:
        for r in runs:
            print(json.dumps(r, default=str))
    else:
        _show_runs(runs, args.db, args.distill, out, err)
    return 0


def _show_runs(runs: list[dict], db: str, distill: str | None, out: Console, err: Console) -> None:
    from factory.distill.compare import (accuracy_comparisons, heldout_comparisons, heldout_table,
                                         latest_per_mixture, runs_table, verdict)

    if not runs:
        err.print(f"no finished runs{' of ' + distill if distill else ''} in {db}")
        return
    for name, latest in latest_per_mixture(runs).items():
        out.print(runs_table(name, latest))
        if (held := heldout_table(name, latest)) is not None:  # stories: held-out loss, teacher likelihood
            out.print(held)
        out.print(verdict(latest), soft_wrap=True)
    latest = latest_per_mixture(runs)
    for line in heldout_comparisons(latest) + accuracy_comparisons(latest):  # distillations on the same items
        out.print(line, soft_wrap=True)


def _recipes(args, out: Console, err: Console) -> int:
    from factory.render import recipes_table

    out.print(recipes_table(api.recipes()))
    return 0


def _jobs(args, out: Console, err: Console) -> int:
    from factory.render import query_table

    found = api.jobs(args.db)
    if args.json:
        for j in found:
            print(json.dumps(j, default=str))
        return 0
    columns = ["name", "job", "recipe", "created_at", "seeds_done", "samples", "accepted"]
    out.print(query_table(columns, [tuple(j[c] for c in columns) for j in found]))
    return 0


def _init(args, out: Console, err: Console) -> int:
    made = api.init(args.name, args.dir)
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
    except KeyboardInterrupt:
        err.print("interrupted: committed batches are kept; rerun the same command to resume")
        return 130
    except Exception as e:
        code = exit_code(e)
        if code is None:  # a full disk outside the store's batch writes (a checkpoint at close, a migration)
            if "No space left on device" not in str(e) and getattr(e, "errno", None) != errno.ENOSPC:
                raise
            named = re.search(r'"([^"]+)"', str(e)) or re.search(r"'([^']+)'", str(e))
            where = named.group(1) if named else getattr(args, "db", None) or "the database"
            _error(f"no space left on device writing {where}: free space and rerun to resume")
            return 1
        if isinstance(e, BudgetExceeded):
            _error(f"stopped: {e}; committed batches are kept: raise the cap and rerun to continue")
        else:
            _error(str(e))
        return code


if __name__ == "__main__":
    sys.exit(main())
