"""Reads about one job that recipes and tools outside the pipeline need."""
from __future__ import annotations

import json
from pathlib import Path

from stores.handle import takes_store


@takes_store
def job_recipe(con, job: str) -> str:
    """The job's recipe reference, loadable from here (loadable_recipe)."""
    return loadable_recipe(con, con.execute("SELECT recipe FROM jobs WHERE fingerprint = ?", [job]).fetchone()[0])


def loadable_recipe(con, recipe: str) -> str:
    """A stored recipe reference as this process can load it. A file reference is stored
    relative to its job file's folder (JobSpec.recipe_reference): it is found from the
    working folder, else from the database's folder (where a job file's default database
    lives); the first that holds the file gives its absolute path here, never stored. Names,
    module:Class and the absolute paths older databases stored come back as they are."""
    target, sep, attr = recipe.rpartition(":")
    if not (sep and target.endswith(".py")) or Path(target).expanduser().is_absolute():
        return recipe
    database = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    folders = [Path.cwd()] + ([Path(database[0]).resolve().parent] if database and database[0] else [])
    found = next((folder / target for folder in folders if (folder / target).is_file()), None)
    return f"{found.resolve()}:{attr}" if found is not None else recipe


@takes_store
def job_spec(con, job: str) -> dict:
    return json.loads(con.execute("SELECT spec FROM jobs WHERE fingerprint = ?", [job]).fetchone()[0])


def decided_accepts(con, job: str) -> list[tuple[str, str]]:
    """(sample id, text) of the samples the decision accepted, by seed index: the decision's
    accepts, not the curated `accepted` view (a curation pass must not renumber them)."""
    return con.execute("""SELECT s.sample_id, s.text FROM samples s JOIN verdicts v USING (sample_id)
                          WHERE s.job = ? AND v.decision = 'accept' ORDER BY s.seed_index, s.sample_id""",
                       [job]).fetchall()


@takes_store
def job_row(con, job: str) -> dict:
    """name, recipe, spec (parsed) and num_samples of one job."""
    name, recipe, spec, num_samples = con.execute(
        "SELECT name, recipe, spec, num_samples FROM jobs WHERE fingerprint = ?", [job]).fetchone()
    return {"name": name, "recipe": loadable_recipe(con, recipe), "spec": json.loads(spec), "num_samples": num_samples}
