"""Dataset quality stats as SQL over the rows (never counters kept in memory).

Everything returned describes the data, not the run that made it: a rerun that changed
nothing gives the same dict.
"""
from __future__ import annotations

import json

AXES = ("grammar", "creativity", "consistency", "plot")


class UnknownJob(LookupError):
    pass


def list_jobs(con) -> list[dict]:
    rows = con.execute("SELECT fingerprint, name, recipe, num_samples FROM jobs ORDER BY name, fingerprint").fetchall()
    return [{"job": r[0], "name": r[1], "recipe": r[2], "num_samples": r[3]} for r in rows]


def resolve_job(con, job: str | None) -> str:
    """A fingerprint, a prefix of one, or a job name (the most recent job of that name)."""
    jobs = list_jobs(con)
    if not jobs:
        raise UnknownJob("the database holds no jobs yet")
    if job is None:
        if len(jobs) == 1:
            return jobs[0]["job"]
        raise UnknownJob("several jobs in this database, name one: " + ", ".join(f"{j['name']} ({j['job']})" for j in jobs))
    matches = [j for j in jobs if j["job"].startswith(job) or j["name"] == job]
    if len(matches) == 1:
        return matches[0]["job"]
    known = ", ".join(f"{j['name']} ({j['job']})" for j in jobs)
    if not matches:
        raise UnknownJob(f"no job {job!r} in this database; jobs: {known}")
    raise UnknownJob(f"{job!r} matches several jobs, use the fingerprint: {known}")


def _scalar(con, sql: str, job: str):
    return con.execute(sql, [job]).fetchone()[0]


def funnel(con, job: str) -> dict:
    decided = dict(con.execute("SELECT decision, count(*) FROM verdicts WHERE job = ? GROUP BY decision", [job]).fetchall())
    drops = con.execute(
        """SELECT role || ': ' || reason AS why, count(*) FROM drops WHERE job = ? GROUP BY why
           UNION ALL
           SELECT 'verdict: ' || stage, count(*) FROM verdicts WHERE job = ? AND decision = 'drop' GROUP BY stage
           ORDER BY 2 DESC, 1""",
        [job, job],
    ).fetchall()
    return {
        "seeds": _scalar(con, "SELECT count(*) FROM seeds WHERE job = ?", job),
        "generated": _scalar(con, "SELECT count(*) FROM samples WHERE job = ?", job),
        "exact_duplicates": _scalar(con, "SELECT count(*) FROM samples WHERE job = ? AND duplicate_of IS NOT NULL", job),
        "reviewed": _scalar(con, "SELECT count(DISTINCT sample_id) FROM reviews WHERE job = ?", job),
        "adjudicated": _scalar(con, "SELECT count(*) FROM verdicts WHERE job = ? AND stage = 'adjudicator'", job),
        "accepted": decided.get("accept", 0),
        "rejected": decided.get("reject", 0),
        "dropped": decided.get("drop", 0)
        + _scalar(con, "SELECT count(*) FROM drops WHERE job = ? AND role = 'generator'", job),
        "drop_reasons": {why: n for why, n in drops},
        "rejected_by_stage": dict(con.execute(
            "SELECT stage, count(*) FROM verdicts WHERE job = ? AND decision = 'reject' GROUP BY stage ORDER BY stage",
            [job]).fetchall()),
    }


def score_distributions(con, job: str) -> dict:
    out = {}
    for axis in AXES:
        hist = dict(con.execute(f"SELECT {axis}, count(*) FROM reviews WHERE job = ? GROUP BY 1 ORDER BY 1", [job]).fetchall())
        mean, sd = con.execute(f"SELECT avg({axis}), stddev_samp({axis}) FROM reviews WHERE job = ?", [job]).fetchone()
        out[axis] = {"histogram": {str(k): v for k, v in hist.items()},
                     "mean": None if mean is None else round(mean, 3), "stddev": None if sd is None else round(sd, 3)}
    return out


def reviewer_agreement(con, job: str) -> dict:
    """Per sample, the spread (max - min) of the reviewers' overall scores, and pairs of
    reviewers within one point of each other on each axis."""
    spread = con.execute(
        """SELECT avg(s), median(s), count(*) FROM (
             SELECT max(overall) - min(overall) AS s FROM reviews WHERE job = ?
             GROUP BY sample_id HAVING count(*) >= 2)""",
        [job],
    ).fetchone()
    within = con.execute(
        f"""SELECT avg(CASE WHEN {' AND '.join(f'abs(a.{x} - b.{x}) <= 1' for x in AXES)} THEN 1.0 ELSE 0.0 END)
            FROM reviews a JOIN reviews b ON a.sample_id = b.sample_id AND a.reviewer_index < b.reviewer_index
            WHERE a.job = ?""",
        [job],
    ).fetchone()[0]
    return {
        "samples_with_2plus_reviews": spread[2],
        "mean_spread": None if spread[0] is None else round(spread[0], 3),
        "median_spread": None if spread[1] is None else round(spread[1], 3),
        "pairs_within_1_point_all_axes": None if within is None else round(within, 3),
    }


def tokens_per_role(con, job: str) -> dict:
    rows = con.execute(
        """SELECT role, count(*), sum(prompt_tokens), sum(completion_tokens), sum(seconds) FROM (
             SELECT 'generator' AS role, prompt_tokens, completion_tokens, seconds FROM samples WHERE job = ?
             UNION ALL SELECT 'generator', prompt_tokens, completion_tokens, seconds FROM drops WHERE job = ? AND role = 'generator'
             UNION ALL SELECT 'reviewer', prompt_tokens, completion_tokens, seconds FROM reviews WHERE job = ?
             UNION ALL SELECT 'reviewer', prompt_tokens, completion_tokens, seconds FROM drops WHERE job = ? AND role = 'reviewer'
             UNION ALL SELECT 'adjudicator', prompt_tokens, completion_tokens, seconds FROM verdicts
                       WHERE job = ? AND stage = 'adjudicator'
             UNION ALL SELECT 'adjudicator', prompt_tokens, completion_tokens, seconds FROM drops WHERE job = ? AND role = 'adjudicator'
           ) GROUP BY role ORDER BY role""",
        [job] * 6,
    ).fetchall()
    out = {}
    for role, calls, prompt, completion, seconds in rows:
        # seconds are each call's own generation time (engines run in parallel, so this is
        # per-engine throughput, not the job's wall-clock rate).
        out[role] = {"calls": calls, "prompt_tokens": int(prompt or 0), "completion_tokens": int(completion or 0),
                     "completion_tokens_per_second": round((completion or 0) / seconds, 2) if seconds else None}
    return out


def job_stats(con, job: str | None = None) -> dict:
    fingerprint = resolve_job(con, job)
    name, recipe, rule, num_samples = con.execute(
        "SELECT name, recipe, decision_rule, num_samples FROM jobs WHERE fingerprint = ?", [fingerprint]).fetchone()
    f = funnel(con, fingerprint)
    decided = f["accepted"] + f["rejected"] + (f["dropped"])
    return {
        "job": fingerprint, "name": name, "recipe": recipe, "num_samples": num_samples,
        "decision_rule": json.loads(rule),
        "funnel": f,
        "adjudication_rate": round(f["adjudicated"] / f["reviewed"], 4) if f["reviewed"] else None,
        "acceptance_rate": round(f["accepted"] / decided, 4) if decided else None,
        "scores": score_distributions(con, fingerprint),
        "reviewer_agreement": reviewer_agreement(con, fingerprint),
        "tokens": tokens_per_role(con, fingerprint),
    }
