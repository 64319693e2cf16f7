"""factory: synthetic data made by Generator, Reviewers and Adjudicator roles, kept in DuckDB.

    import factory
    result = factory.run("jobs/tinystories-demo.yaml", db="demo.duckdb")
    print(factory.stats("demo.duckdb")["funnel"])
    factory.sql("SELECT text FROM samples LIMIT 3", db="demo.duckdb")

Every CLI verb is a function here (factory/api.py). roles/ never imports factory/, so
importing this package imports no cycle.
"""
from factory.api import (UncuratedWarning, curate, distill, explain, export, init, jobs, probe, recipes, report,
                         run, runs, sql, stats)
from factory.spec import JobError, JobSpec, load_job, parse_job

__all__ = ["JobError", "JobSpec", "UncuratedWarning", "curate", "distill", "explain", "export", "init", "jobs",
           "load_job", "parse_job", "probe", "recipes", "report", "run", "runs", "sql", "stats"]
