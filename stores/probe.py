"""`factory probe`'s SQL: the accepted samples it corrupts, its rows, and the latest run's
headline for stats and the report."""
from __future__ import annotations

import json

from stores.handle import takes_store
from stores.rows import dict_rows
from stores.insert import insert_rows
from stores.transaction import transaction


@takes_store
def accepted_for_probe(con, job: str) -> list[dict]:
    """The job's accepted samples (the decision's accepts, exact duplicates left out) with
    what re-reviewing them needs: the seed variables, the author model, math's reference
    answer. Ordered by seed index."""
    rows = dict_rows(con, """
        SELECT s.sample_id, s.seed_index, s.text, s.payload, s.model, d.payload AS seed,
               f.reference_answer
        FROM samples s JOIN verdicts v USING (sample_id)
        LEFT JOIN seeds d ON d.seed_id = s.seed_id
        LEFT JOIN verifications f ON f.sample_id = s.sample_id
        WHERE s.job = ? AND v.decision = 'accept' AND s.duplicate_of IS NULL
        ORDER BY s.seed_index, s.sample_id""", [job])
    for r in rows:
        for key in ("payload", "model", "seed"):
            r[key] = json.loads(r[key]) if isinstance(r[key], str) else r[key]
    return rows


@takes_store
def write_probe(con, run: dict, items: list[dict]) -> None:
    """A run's row and its items, in one transaction: a probe is stored whole or not at all."""
    with transaction(con):
        insert_rows(con, "probe_runs", [run])
        insert_rows(con, "probe_items", items)


def _has_probe_tables(con) -> bool:
    # A database made before m008 and opened read-only (stats, report) has no probe tables.
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'probe_runs'").fetchone()[0])


def latest_probe(con, job: str) -> dict | None:
    """The job's newest probe run: {"run_id", "created_at", "config", "summary"}, or None."""
    if not _has_probe_tables(con):
        return None
    rows = dict_rows(con, """SELECT run_id, created_at, config, summary FROM probe_runs WHERE job = ?
                             ORDER BY created_at DESC, run_id LIMIT 1""", [job])
    if not rows:
        return None
    row = rows[0]
    return {"run_id": row["run_id"], "created_at": str(row["created_at"]), "config": json.loads(row["config"]),
            "summary": json.loads(row["summary"])}


def probe_headline(con, job: str) -> dict | None:
    """What `factory stats` shows of the latest probe: the decision score's pairwise accuracy
    over all corruption kinds, its interval, the pairs and the run."""
    latest = latest_probe(con, job)
    if latest is None:
        return None
    s = latest["summary"]
    return {"run_id": latest["run_id"], "created_at": latest["created_at"], "samples": s["samples"],
            "pairs": s["pairs"], "pairwise_accuracy": s["pairwise_accuracy"],
            "ci_low": s["pairwise_accuracy_ci"][0], "ci_high": s["pairwise_accuracy_ci"][1]}


def probe_stats(con, job: str) -> dict:
    """{"probe": headline} for job_stats when the job has been probed, else {} (no new key:
    stats of a job never probed stay what they were)."""
    headline = probe_headline(con, job)
    return {} if headline is None else {"probe": headline}
