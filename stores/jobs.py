"""Reads about one job that recipes and tools outside the pipeline need."""
from __future__ import annotations

import json


def job_recipe(con, job: str) -> str:
    return con.execute("SELECT recipe FROM jobs WHERE fingerprint = ?", [job]).fetchone()[0]


def job_spec(con, job: str) -> dict:
    return json.loads(con.execute("SELECT spec FROM jobs WHERE fingerprint = ?", [job]).fetchone()[0])


def decided_accepts(con, job: str) -> list[tuple[str, str]]:
    """(sample id, text) of the samples the decision accepted, by seed index: the decision's
    accepts, not the curated `accepted` view (a curation pass must not renumber them)."""
    return con.execute("""SELECT s.sample_id, s.text FROM samples s JOIN verdicts v USING (sample_id)
                          WHERE s.job = ? AND v.decision = 'accept' ORDER BY s.seed_index, s.sample_id""",
                       [job]).fetchall()


def job_row(con, job: str) -> dict:
    """name, recipe, spec (parsed) and num_samples of one job."""
    name, recipe, spec, num_samples = con.execute(
        "SELECT name, recipe, spec, num_samples FROM jobs WHERE fingerprint = ?", [job]).fetchone()
    return {"name": name, "recipe": recipe, "spec": json.loads(spec), "num_samples": num_samples}
