"""`factory explain SAMPLE_ID`: the whole story of one sample, from its seed to the
accepted view."""
from __future__ import annotations

import json


def _rows(con, sql: str, params: list) -> list[dict]:
    cur = con.execute(sql, params)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def _json(v):
    if isinstance(v, str) and v[:1] in "{[":
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v
    return v


def _clean(rows: list[dict]) -> list[dict]:
    return [{k: _json(v) for k, v in r.items()} for r in rows]


def explain(con, sample_id: str) -> dict:
    matches = con.execute("SELECT sample_id FROM samples WHERE sample_id LIKE ? || '%'", [sample_id]).fetchall()
    if len(matches) != 1:
        raise LookupError(f"no sample {sample_id!r}" if not matches else f"{sample_id!r} matches {len(matches)} samples")
    sid = matches[0][0]
    sample = _clean(_rows(con, "SELECT * FROM samples WHERE sample_id = ?", [sid]))[0]
    seed = _clean(_rows(con, "SELECT seed_index, payload FROM seeds WHERE seed_id = ?", [sample["seed_id"]]))[0]
    job = _rows(con, "SELECT fingerprint, name, recipe FROM jobs WHERE fingerprint = ?", [sample["job"]])[0]
    lineage = ("template", "template_sha256", "role_version", "model", "sampling", "request_seed", "request_key",
               "prompt_tokens", "completion_tokens", "seconds")
    return {
        "sample_id": sid,
        "job": job,
        "seed": seed,
        "generation": {k: sample[k] for k in lineage},
        "text": sample["text"],
        "payload": sample["payload"],
        "rule_checks": sample["rule_checks"],
        "exact_duplicate_of": sample["duplicate_of"],
        "reviews": _clean(_rows(con, """SELECT reviewer_index, scores, overall, label, critique, template, model->>'model' AS model
                                        FROM reviews WHERE sample_id = ? ORDER BY reviewer_index""", [sid])),
        "dropped_outputs": _clean(_rows(con, "SELECT role, reviewer_index, reason, raw_text FROM drops WHERE sample_id = ?", [sid])),
        "verdict": (_clean(_rows(con, "SELECT decision, stage, reason, mean_score, spread, n_reviews FROM verdicts WHERE sample_id = ?",
                                 [sid])) or [None])[0],
        "verification": (_clean(_rows(con, "SELECT * EXCLUDE (sample_id, job) FROM verifications WHERE sample_id = ?",
                                      [sid])) or [None])[0],
        "solutions": _clean(_rows(con, """SELECT kind, attempt, status, status_reason, answer, correct, text FROM solutions
                                          WHERE sample_id = ? ORDER BY kind, attempt""", [sid])),
        "dedup": _clean(_rows(con, "SELECT method, cluster_id, kept, similarity FROM dedup_clusters WHERE sample_id = ?", [sid])),
        "contamination": _clean(_rows(con, "SELECT benchmark, benchmark_row, ngram_size, ngram FROM contamination WHERE sample_id = ?",
                                      [sid])),
        "quality": (_clean(_rows(con, "SELECT score, components FROM quality_scores WHERE sample_id = ?", [sid])) or [None])[0],
        "in_accepted_view": bool(con.execute("SELECT count(*) FROM accepted WHERE sample_id = ?", [sid]).fetchone()[0]),
    }
