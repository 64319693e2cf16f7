"""factory: synthetic data made by Generator, Reviewers and Adjudicator roles, kept in DuckDB.

    import factory
    result = factory.run("jobs/tinystories-demo.yaml", db="demo.duckdb")
    print(factory.stats("demo.duckdb")["funnel"])
    factory.sql("SELECT text FROM samples LIMIT 3", db="demo.duckdb")
"""
from factory.spec import JobError, JobSpec, load_job, parse_job

__all__ = ["JobError", "JobSpec", "load_job", "parse_job", "run", "sql", "stats"]


def __getattr__(name: str):
    # run / stats / sql load the pipeline (roles, Ray, DuckDB) on first use: importing a
    # light module such as `roles` or `factory.templates` must not pull all of it in.
    if name in ("run", "sql", "stats"):
        from factory import api

        return getattr(api, name)
    raise AttributeError(f"module 'factory' has no attribute {name!r}")
