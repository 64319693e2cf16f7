"""Reads and writes of the curation pass. The write replaces a job's curation results in
one transaction: a failing pass leaves the previous state."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from stores.handle import takes_store
from stores.transaction import transaction

DIMENSIONS = 384


@takes_store
def sample_signals(con, job: str) -> list[tuple]:
    """(sample_id, seed_index, text, duplicate_of, rule_checks, review_mean, adjudication, verified,
    likelihood)"""
    return con.execute(
        """SELECT s.sample_id, s.seed_index, s.text, s.duplicate_of, s.rule_checks,
                  (SELECT avg(r.overall) FROM reviews r WHERE r.sample_id = s.sample_id),
                  (SELECT v.decision FROM verdicts v WHERE v.sample_id = s.sample_id AND v.stage = 'adjudicator'),
                  (SELECT x.verified FROM verifications x WHERE x.sample_id = s.sample_id),
                  (SELECT g.value FROM signals g WHERE g.sample_id = s.sample_id AND g.signal = 'likelihood')
           FROM samples s WHERE s.job = ? ORDER BY s.seed_index""", [job]).fetchall()


@takes_store
def job_curation(con, job: str) -> tuple[str, dict | None]:
    """(recipe, the curation settings stored with the job or None)."""
    from stores.jobs import loadable_recipe

    recipe, stored = con.execute("SELECT recipe, curation FROM jobs WHERE fingerprint = ?", [job]).fetchone()
    return loadable_recipe(con, recipe), None if stored is None else json.loads(stored)


@takes_store
def last_pass_config(con, job: str) -> dict | None:
    """The settings of the job's last curation pass (one row per job: each pass replaces it)."""
    row = con.execute("SELECT config FROM curation_runs WHERE job = ?", [job]).fetchone()
    return None if row is None else json.loads(row[0])


@takes_store
def contamination_flags(con, job: str) -> set[tuple[str, str, int]]:
    """The job's contamination flags as their keys: (sample_id, benchmark, ngram_size)."""
    rows = con.execute("SELECT sample_id, benchmark, ngram_size FROM contamination WHERE job = ?", [job]).fetchall()
    return {tuple(r) for r in rows}


@takes_store
def cached_embeddings(con, model: str, sample_ids: list[str]) -> dict[str, np.ndarray]:
    if not sample_ids:
        return {}
    columns = con.execute(
        "SELECT sample_id, embedding FROM embeddings WHERE model = ? AND sample_id IN (SELECT unnest(?))",
        [model, sample_ids]).fetchnumpy()
    if len(columns["sample_id"]) == 0:
        return {}
    vectors = np.stack(columns["embedding"]).astype(np.float32).reshape(-1, DIMENSIONS)
    return dict(zip(columns["sample_id"].tolist(), vectors))


READ_CHUNK = 50_000  # ids per query: 50k x 384 float32 is 77 MB read at a time


@takes_store
def embedding_matrix(con, model: str, sample_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, found): row k is sample_ids[k]'s cached embedding, zeros where found[k] is
    False. Read a chunk at a time into one float32 array: cached_embeddings' dict and the
    pass's stack of it held three 1.5 GB copies at once for 1M samples (bench/curation_rss.py)."""
    vectors = np.zeros((len(sample_ids), DIMENSIONS), dtype=np.float32)
    found = np.zeros(len(sample_ids), dtype=bool)
    for start in range(0, len(sample_ids), READ_CHUNK):
        chunk = sample_ids[start:start + READ_CHUNK]
        columns = con.execute(
            "SELECT sample_id, embedding FROM embeddings WHERE model = ? AND sample_id IN (SELECT unnest(?))",
            [model, chunk]).fetchnumpy()
        if len(columns["sample_id"]) == 0:
            continue
        position = {sid: start + k for k, sid in enumerate(chunk)}
        rows = np.array([position[sid] for sid in columns["sample_id"].tolist()], dtype=np.int64)
        vectors[rows] = np.stack(columns["embedding"]).reshape(-1, DIMENSIONS)
        found[rows] = True
    return vectors, found


@takes_store
def accepted_samples(con, job: str) -> list[tuple[str, str, str]]:
    """(sample_id, text, content_hash) of a job's accepted view rows, in seed order: what
    another job's pass compares its samples with (curation.against_jobs)."""
    return con.execute("SELECT sample_id, text, content_hash FROM accepted WHERE job = ? ORDER BY seed_index, sample_id",
                       [job]).fetchall()


def outside_duplicate_counts(con, job: str) -> dict:
    """How many of the job's samples the last pass removed as duplicates of outside texts,
    per source (`job NAME` or `corpus NAME`) and method. Empty on a database from before m010."""
    if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'outside_duplicates'"
                       ).fetchone()[0]:
        return {"samples": 0, "by_source": {}}
    rows = con.execute("""SELECT kind || ' ' || against_name || ' (' || method || ')', count(*)
                          FROM outside_duplicates WHERE job = ? GROUP BY 1 ORDER BY 1""", [job]).fetchall()
    return {"samples": sum(n for _, n in rows), "by_source": dict(rows)}


@takes_store
def cached_benchmark_embeddings(con, file_sha256: str, field: str, model: str, rows: int) -> np.ndarray | None:
    """A benchmark file's row embeddings (row order) when the cache holds all `rows` of them."""
    columns = con.execute(
        """SELECT row, embedding FROM benchmark_embeddings WHERE file_sha256 = ? AND field = ? AND model = ?
           ORDER BY row""", [file_sha256, field, model]).fetchnumpy()
    if len(columns["row"]) != rows or rows == 0:
        return None
    return np.stack(columns["embedding"]).astype(np.float32).reshape(-1, DIMENSIONS)


@takes_store
def write_curation(con, job: str, model: str, new_embeddings: dict[str, np.ndarray], members: list[dict],
                   hits: list[dict], scores: list[dict], config: dict, summary: dict,
                   store_with_job: bool = False, benchmark_embeddings: list[tuple] = (),
                   outside: list[dict] = ()) -> None:
    """store_with_job: the settings came from the job's YAML; they become the job's stored
    settings in the same transaction (a failing pass stores nothing). benchmark_embeddings:
    (file_sha256, field, vectors) of benchmark (or corpus) files embedded by this pass, kept
    across passes and jobs (the cache is keyed by content, not by job). outside: the rows of
    outside_duplicates (samples removed as duplicates of other jobs' or corpus texts)."""
    with transaction(con):
        for sha, field, vectors in benchmark_embeddings:
            frame = pd.DataFrame({"file_sha256": sha, "field": field, "model": model, "row": range(len(vectors)),
                                  "embedding": [v.tolist() for v in vectors]})
            con.register("new_benchmark_embeddings", frame)
            con.execute("""INSERT INTO benchmark_embeddings SELECT file_sha256, field, model, row,
                           embedding::FLOAT[384] FROM new_benchmark_embeddings ON CONFLICT DO NOTHING""")
            con.unregister("new_benchmark_embeddings")
        if new_embeddings:
            frame = pd.DataFrame({"sample_id": list(new_embeddings), "model": model,
                                  "embedding": [v.tolist() for v in new_embeddings.values()]})
            con.register("new_embeddings", frame)
            con.execute("""INSERT INTO embeddings SELECT sample_id, model, embedding::FLOAT[384] FROM new_embeddings
                           ON CONFLICT DO NOTHING""")
            con.unregister("new_embeddings")
        for table in ("dedup_clusters", "contamination", "quality_scores", "curation_runs", "outside_duplicates"):
            con.execute(f"DELETE FROM {table} WHERE job = ?", [job])
        _insert_frame(con, "dedup_clusters", members)
        _insert_frame(con, "outside_duplicates", list(outside))
        _insert_frame(con, "contamination", hits)
        _insert_frame(con, "quality_scores", scores)
        con.execute("INSERT INTO curation_runs (job, config, summary) VALUES (?, ?, ?)",
                    [job, json.dumps(config, sort_keys=True), json.dumps(summary, sort_keys=True)])
        if store_with_job:
            con.execute("UPDATE jobs SET curation = ? WHERE fingerprint = ?", [json.dumps(config, sort_keys=True), job])
        from stores.summaries import refresh_curation_state  # the stats summaries' curation state, same transaction

        refresh_curation_state(con)


def _insert_frame(con, table: str, rows: list[dict]) -> None:
    if not rows:
        return
    frame = pd.DataFrame(rows)
    con.register("rows_to_insert", frame)
    con.execute(f"INSERT INTO {table} ({', '.join(frame.columns)}) SELECT * FROM rows_to_insert")
    con.unregister("rows_to_insert")
