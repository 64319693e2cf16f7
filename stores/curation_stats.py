"""Stats that curation adds: acceptance per template and model, duplicate rates,
contamination, diversity and reviewer agreement (Krippendorff's alpha)."""
from __future__ import annotations

import json
import re

import numpy as np

_WORD = re.compile(r"\w+")


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
    rows = con.execute("""SELECT benchmark, ngram_size, count(DISTINCT sample_id) FROM contamination WHERE job = ?
                          GROUP BY ALL ORDER BY ALL""", [job]).fetchall()
    samples = con.execute("SELECT count(DISTINCT sample_id) FROM contamination WHERE job = ?", [job]).fetchone()[0]
    return {"samples": samples, "by_benchmark": {f"{b} ({n}-gram)": c for b, n, c in rows}}


def diversity(con, job: str, n: int = 3) -> dict:
    """Over the accepted view: distinct word n-grams / all n-grams, and the mean pairwise
    cosine distance of the stored embeddings (present after a curation pass)."""
    texts = [t for (t,) in con.execute("SELECT text FROM accepted WHERE job = ?", [job]).fetchall()]
    grams = [tuple(w[i:i + n]) for w in (_WORD.findall(t.lower()) for t in texts) for i in range(len(w) - n + 1)]
    table = con.execute("""SELECT e.embedding FROM embeddings e JOIN accepted a USING (sample_id)
                           WHERE a.job = ?""", [job]).fetchall()
    distance = None
    if len(table) >= 2:
        from factory.curation.semantic_dedup import mean_pairwise_distance

        distance = mean_pairwise_distance(np.asarray([r[0] for r in table], dtype=np.float32))
    return {f"distinct_{n}gram_ratio": round(len(set(grams)) / len(grams), 4) if grams else None,
            "mean_pairwise_embedding_distance": distance}


def krippendorff_alpha(con, job: str) -> float | None:
    """Interval alpha over the reviewers' overall scores (reviewer index = coder)."""
    rows = con.execute("SELECT sample_id, reviewer_index, overall FROM reviews WHERE job = ?", [job]).fetchall()
    if not rows:
        return None
    import krippendorff

    units = {s: i for i, s in enumerate(sorted({r[0] for r in rows}))}
    coders = max(r[1] for r in rows) + 1
    data = np.full((coders, len(units)), np.nan)
    for sample, coder, score in rows:
        data[coder, units[sample]] = score
    pairable = np.sum(np.sum(~np.isnan(data), axis=0) >= 2)
    if pairable < 2 or np.nanstd(data) == 0:
        return None  # alpha is undefined without variation or paired ratings
    return round(float(krippendorff.alpha(reliability_data=data, level_of_measurement="interval")), 4)


def curation_stats(con, job: str) -> dict:
    run = con.execute("SELECT summary, curated_at FROM curation_runs WHERE job = ?", [job]).fetchone()
    return {
        "curated": run is not None,
        "curation_summary": json.loads(run[0]) if run else None,
        "acceptance_by_template": acceptance_by(con, job, "template"),
        "acceptance_by_model": acceptance_by(con, job, "model"),
        "duplicate_rates": duplicate_rates(con, job),
        "contamination": contamination(con, job),
        "diversity": diversity(con, job),
        "accepted_view_rows": con.execute("SELECT count(*) FROM accepted WHERE job = ?", [job]).fetchone()[0],
        "mean_quality_score": (lambda v: None if v is None else round(v, 4))(
            con.execute("SELECT avg(score) FROM quality_scores WHERE job = ?", [job]).fetchone()[0]),
    }
