"""factory: synthetic data made by Generator, Reviewers and Adjudicator roles, kept in DuckDB.

    import factory
    result = factory.run("jobs/tinystories-demo.yaml", db="demo.duckdb")
    print(factory.stats("demo.duckdb")["funnel"])
    factory.sql("SELECT text FROM samples LIMIT 3", db="demo.duckdb")
"""
from factory.api import run, sql, stats
from factory.spec import JobError, JobSpec, load_job, parse_job

__all__ = ["JobError", "JobSpec", "load_job", "parse_job", "run", "sql", "stats"]
