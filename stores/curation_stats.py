"""Stats that curation adds: acceptance per template and model, duplicate rates,
contamination, diversity and reviewer agreement (Krippendorff's alpha)."""
from __future__ import annotations

import json

import numpy as np

from stores.curation import outside_duplicate_counts
from stores.diversity import mean_pairwise_distance


def acceptance_by(con, job: str, column: str) -> dict:
    """Acceptance rate of samples grouped by the generator's template or model."""
    expr = {"template": "s.template", "model": "s.model->>'model'"}[column]
    rows = con.execute(
        f"""SELECT coalesce({expr}, '(seed)') AS k, count(*), count(*) FILTER (v.decision = 'accept')
            FROM samples s JOIN verdicts v USING (sample_id) WHERE s.job = ? GROUP BY k ORDER BY k""", [job]).fetchall()
    return {k: {"samples": n, "accepted": a, "rate": round(a / n, 4)} for k, n, a in rows}


def duplicate_rates(con, job: str) -> dict:
    total = con.execute("SELECT count(*) FROM samples WHERE job = ?", [job]).fetchone()[0]
    exact = con.execute("SELECT count(*) FROM samples WHERE job = ? AND duplicate_of IS NOT NULL", [job]).fetchone()[0]
    removed = dict(con.execute("SELECT method, count(*) FROM dedup_clusters WHERE job = ? AND NOT kept GROUP BY 1",
                               [job]).fetchall())
    rate = (lambda n: round(n / total, 4) if total else None)
    return {"exact": rate(exact), "near": rate(removed.get("near", 0)), "semantic": rate(removed.get("semantic", 0))}


def contamination(con, job: str) -> dict:
    rows = con.execute("""SELECT benchmark, coalesce(method, 'ngram'), ngram_size, count(DISTINCT sample_id)
                          FROM contamination WHERE job = ? GROUP BY ALL ORDER BY ALL""", [job]).fetchall()
    samples = con.execute("SELECT count(DISTINCT sample_id) FROM contamination WHERE job = ?", [job]).fetchone()[0]
    return {"samples": samples, "by_benchmark": {f"{b} ({f'{n}-gram' if m == 'ngram' else 'paraphrase'})": c
                                                 for b, m, n, c in rows}}


# Words as Python's \w+ on lower(text) (RE2 [\pL\pN_]); each 3-gram hashed to 64 bits
# (collisions ~1e-5 at 20M n-grams). In SQL: 4.0 s at 1M samples against 18.8 s and 3.9 GB
# for the same ratio in Python (bench/stats_1m.py).
# On a fixed subset of at most 20k accepted samples (by hash of the id): bounded cost at any
# job size, and a ratio that is comparable between jobs of different sizes.
DIVERSITY_SUBSET = 20_000
DISTINCT_3GRAMS_SQL = rf"""
WITH s AS (SELECT text FROM accepted WHERE job = ? ORDER BY hash(sample_id) LIMIT {DIVERSITY_SUBSET}),
w AS (SELECT regexp_extract_all(lower(text), '[\pL\pN_]+') AS ws FROM s),
g AS (SELECT unnest([hash(ws[i], ws[i + 1], ws[i + 2]) FOR i IN range(1, len(ws) - 1)]) AS h FROM w)
SELECT count(DISTINCT h), count(*) FROM g"""

# Krippendorff's alpha (interval) in closed form: 1 - (n - 1) * D_within / D_total, where
# D_within sums each unit's m/(m-1) x squared deviations and D_total is over all pairable
# values. The krippendorff package builds units x values x values arrays (~31 GB at 1M
# samples); this is one scan (0.18 s at 1M). tests/curation checks it against the package.
ALPHA_SQL = """
WITH u AS (SELECT count(*) AS m, var_pop(overall) * count(*) AS ss, list(overall) AS v
           FROM reviews WHERE job = ? GROUP BY sample_id HAVING count(*) >= 2)
SELECT sum(m * ss / (m - 1)), sum(m), (SELECT var_pop(x) * count(*) FROM (SELECT unnest(v) AS x FROM u))
FROM u"""


def diversity(con, job: str) -> dict:
    """Over the accepted view (a fixed subset of up to 20k samples): distinct word 3-grams /
    all 3-grams, and the mean pairwise cosine distance of the stored embeddings of up to
    2,000 of them."""
    distinct, total = con.execute(DISTINCT_3GRAMS_SQL, [job]).fetchone()
    rows = con.execute("""SELECT e.embedding FROM embeddings e JOIN accepted a USING (sample_id)
                          WHERE a.job = ? ORDER BY hash(a.sample_id) LIMIT 2000""", [job]).fetchall()
    distance = None
    if len(rows) >= 2:
        distance = mean_pairwise_distance(np.asarray([r[0] for r in rows], dtype=np.float32))
    return {"distinct_3gram_ratio": round(distinct / total, 4) if total else None,
            "mean_pairwise_embedding_distance": distance}


def krippendorff_alpha(con, job: str) -> float | None:
    """Interval alpha over the reviewers' overall scores; None when undefined (no pairable
    values, or no variation at all)."""
    within, n, total = con.execute(ALPHA_SQL, [job]).fetchone()
    if not n or n < 2 or not total:
        return None
    return round(1 - (n - 1) * within / (n * total), 4)


def curation_stats(con, job: str) -> dict:
    run = con.execute("SELECT summary, curated_at FROM curation_runs WHERE job = ?", [job]).fetchone()
    return {
        "curated": run is not None,
        "curation_summary": json.loads(run[0]) if run else None,
        "acceptance_by_template": acceptance_by(con, job, "template"),
        "acceptance_by_model": acceptance_by(con, job, "model"),
        "duplicate_rates": duplicate_rates(con, job),
        "contamination": contamination(con, job),
        "outside_duplicates": outside_duplicate_counts(con, job),
        "diversity": diversity(con, job),
        "accepted_view_rows": con.execute("SELECT count(*) FROM accepted WHERE job = ?", [job]).fetchone()[0],
        "mean_quality_score": (lambda v: None if v is None else round(v, 4))(
            con.execute("SELECT avg(score) FROM quality_scores WHERE job = ?", [job]).fetchone()[0]),
    }
