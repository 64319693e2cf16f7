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

VERBS = ("browse", "curate", "distill", "explain", "export", "init", "jobs", "preview", "probe", "recipes", "report",
         "run", "runs", "sql", "stats")


class _VerbModule(types.ModuleType):
    """A submodule named like a verb (factory/recipes/, factory/distill/, factory/report.py,
    ...), callable as that verb: `factory.recipes()` runs the verb and `import
    factory.recipes.base as b` finds the submodule through the same attribute."""

    def __call__(self, *args, **kwargs):
        return getattr(sys.modules["factory.api"], self.__name__.rpartition(".")[2])(*args, **kwargs)


class _Package(types.ModuleType):
    """Importing a submodule binds it as an attribute of its package, which would replace
    the verb factory.recipes() with the subpackage factory/recipes/; the verb functions
    would instead hide the submodules from `import factory.recipes.base as b` (which reads
    attributes). So a verb's submodule, once imported, is bound as itself made callable as
    the verb: both work."""

    def __setattr__(self, name, value):
        if name in VERBS and isinstance(value, types.ModuleType) and value.__name__ == f"{__name__}.{name}":
            if type(value) is types.ModuleType:
                value.__class__ = _VerbModule
            if not isinstance(value, _VerbModule):
                return  # a module with its own class keeps it; the verb function stays
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

from factory.api import (UncuratedWarning, browse, curate, distill, explain, export, export_labels,  # noqa: E402
                         gold, import_labels, init, jobs, preview, probe, recipes, report, run, runs, sql,
                         sql_rows, stats)
from factory.spec import JobError, JobSpec, load_job, parse_job  # noqa: E402

for _verb in VERBS:  # the verb submodules imported so far (factory.recipes is): bound as callable modules
    if f"{__name__}.{_verb}" in sys.modules:
        setattr(sys.modules[__name__], _verb, sys.modules[f"{__name__}.{_verb}"])
del _verb

# Functions of factory.api that are not CLI verbs of their own name: `factory label import|export`,
# `factory gold`, and sql_rows (sql's columns and rows, for callers that want a table).
__all__ = ["JobError", "JobSpec", "UncuratedWarning", *VERBS, "export_labels", "gold", "import_labels", "load_job",
           "parse_job", "sql_rows"]
