"""factory: synthetic data made by Generator, Reviewers and Adjudicator roles, kept in DuckDB.

    import factory
    result = factory.run("jobs/tinystories-demo.yaml", db="demo.duckdb")
    print(factory.stats("demo.duckdb")["funnel"])
    factory.sql("SELECT text FROM samples LIMIT 3", db="demo.duckdb")

Every CLI verb is a function here (factory/api.py). roles/ never imports factory/, so
importing this package imports no cycle.
"""
import sys
import types

VERBS = ("curate", "distill", "explain", "export", "init", "jobs", "probe", "recipes", "report", "run", "runs",
         "sql", "stats")


class _Package(types.ModuleType):
    """Importing a submodule binds it as an attribute of its package: `import
    factory.distill.plan` would replace the verb factory.distill() with the subpackage
    (factory/distill/, factory/recipes/, factory/report.py, ...). The verbs win; the
    submodules stay importable (`from factory.distill import ...` reads sys.modules)."""

    def __setattr__(self, name, value):
        if name in VERBS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

from factory.api import (UncuratedWarning, curate, distill, explain, export, init, jobs, probe,  # noqa: E402
                         recipes, report, run, runs, sql, stats)
from factory.spec import JobError, JobSpec, load_job, parse_job  # noqa: E402

__all__ = ["JobError", "JobSpec", "UncuratedWarning", *VERBS, "load_job", "parse_job"]
