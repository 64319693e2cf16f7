"""The SQL export and the dataset card read: a job's accepted rows, its lineage, its last
curation pass."""
from __future__ import annotations

import json

from stores.rows import dict_rows

ROWS_SQL = """
SELECT a.sample_id, a.seed_index, a.text, se.payload AS seed, a.payload, a.quality_score,
       (SELECT avg(overall) FROM reviews r WHERE r.sample_id = a.sample_id) AS review_mean,
       v.reference_answer AS answer,
       (SELECT text FROM solutions s WHERE s.sample_id = a.sample_id AND s.kind = 'program' AND s.correct
        ORDER BY attempt LIMIT 1) AS program,
       (SELECT text FROM solutions s WHERE s.sample_id = a.sample_id AND s.kind = 'long' AND s.correct
        ORDER BY attempt LIMIT 1) AS long_solution,
       (SELECT text FROM solutions s WHERE s.sample_id = a.sample_id AND s.kind = 'short' AND s.correct
        ORDER BY attempt LIMIT 1) AS short_solution
FROM accepted a JOIN seeds se USING (seed_id) LEFT JOIN verifications v USING (sample_id)
WHERE a.job = ? ORDER BY a.seed_index
"""


def accepted_rows(con, job: str) -> list[dict]:
    rows = dict_rows(con, ROWS_SQL, [job])
    for row in rows:
        for key in ("seed", "payload"):
            if isinstance(row[key], str):
                row[key] = json.loads(row[key])
    return rows


def lineage(con, job: str) -> dict:
    models = [r[0] for r in con.execute(
        """SELECT DISTINCT model::VARCHAR FROM (SELECT model FROM samples WHERE job = ? UNION ALL
           SELECT model FROM reviews WHERE job = ? UNION ALL SELECT model FROM solutions WHERE job = ?)
           WHERE model IS NOT NULL ORDER BY 1""", [job] * 3).fetchall()]
    templates = [r[0] for r in con.execute(
        """SELECT DISTINCT template || coalesce(' (sha256 ' || template_sha256 || ')', '') FROM (
             SELECT template, template_sha256 FROM samples WHERE job = ? UNION ALL
             SELECT template, template_sha256 FROM reviews WHERE job = ? UNION ALL
             SELECT template, template_sha256 FROM verdicts WHERE job = ? UNION ALL
             SELECT template, template_sha256 FROM solutions WHERE job = ?)
           WHERE template IS NOT NULL ORDER BY 1""", [job] * 4).fetchall()]
    spec = json.loads(con.execute("SELECT spec FROM jobs WHERE fingerprint = ?", [job]).fetchone()[0])
    return {"models": [json.loads(m) for m in models], "templates": templates, "spec": spec}


def last_curation(con, job: str) -> dict | None:
    """When the job's last curation pass ran, with its settings and summary; None if never."""
    row = con.execute("SELECT curated_at, config, summary FROM curation_runs WHERE job = ?", [job]).fetchone()
    if row is None:
        return None
    return {"curated_at": str(row[0]), "config": json.loads(row[1]), "summary": json.loads(row[2])}


# A review's axes that export as score columns: the numeric ones (a label such as age_group is not).
_NUMERIC_AXIS = "json_type(j.value) IN ('UBIGINT', 'BIGINT', 'DOUBLE', 'BOOLEAN')"
# A signal's name without its attempt suffix (expected_scores.3 -> expected_scores).
_SIGNAL_NAME = "regexp_replace(signal, '[.][0-9]+$', '')"


def sample_scores(con, job: str, sample_ids: list[str]) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """Of these samples: (sample_id, axis, mean of its reviews' numeric axis), (sample_id,
    signal name, mean value over the name's attempts), (sample_id, the verdict's stage)."""
    axes = con.execute(
        f"""SELECT r.sample_id, j.key, avg(TRY_CAST(j.value AS DOUBLE)) FROM reviews r, json_each(r.scores) j
            WHERE r.job = ? AND r.sample_id IN (SELECT unnest(?)) AND {_NUMERIC_AXIS} GROUP BY ALL""",
        [job, sample_ids]).fetchall()
    signals = con.execute(
        f"""SELECT sample_id, {_SIGNAL_NAME}, avg(value) FROM signals
            WHERE job = ? AND sample_id IN (SELECT unnest(?)) GROUP BY ALL""", [job, sample_ids]).fetchall()
    stages = con.execute("SELECT sample_id, stage FROM verdicts WHERE job = ? AND sample_id IN (SELECT unnest(?))",
                         [job, sample_ids]).fetchall()
    return axes, signals, stages


def score_names(con, job: str) -> tuple[list[str], list[str]]:
    """The numeric review axes and the signal names of the job's every review and signal
    (not only the exported rows'), unordered."""
    axes = con.execute(
        f"SELECT DISTINCT j.key FROM reviews r, json_each(r.scores) j WHERE r.job = ? AND {_NUMERIC_AXIS}",
        [job]).fetchall()
    signals = con.execute(f"SELECT DISTINCT {_SIGNAL_NAME} FROM signals WHERE job = ?", [job]).fetchall()
    return [a for (a,) in axes], [n for (n,) in signals]
