"""Dataset quality stats as SQL over the rows (never counters kept in memory), or from the
per-job summaries kept in the same transactions as the rows (stores/summaries.py).

Everything returned describes the data, not the run that made it: a rerun that changed
nothing gives the same dict.
"""
from __future__ import annotations

import json

from stores.curation_stats import curation_stats, krippendorff_alpha
from stores.handle import takes_store
from stores.probe import probe_stats
from stores.summary_stats import summarized_stats
from stores.tokens import MODEL_MADE, role_tokens

class UnknownJob(LookupError):
    exit_code = 1  # a runtime problem (factory/cli.py's codes)


@takes_store
def list_jobs(con) -> list[dict]:
    """Every job with its counts, newest first within a name."""
    rows = con.execute(
        """SELECT j.fingerprint, j.name, j.recipe, j.num_samples, j.created_at,
                  (SELECT count(*) FROM done_seeds d WHERE d.job = j.fingerprint),
                  (SELECT count(*) FROM samples s WHERE s.job = j.fingerprint),
                  (SELECT count(*) FROM verdicts v WHERE v.job = j.fingerprint AND v.decision = 'accept')
           FROM jobs j ORDER BY j.name, j.created_at DESC, j.fingerprint""").fetchall()
    return [{"job": r[0], "name": r[1], "recipe": r[2], "num_samples": r[3], "created_at": str(r[4]),
             "seeds_done": r[5], "samples": r[6], "accepted": r[7]} for r in rows]


@takes_store
def resolve_job(con, job: str | None) -> str:
    """A fingerprint, a prefix of one, or a job name (the most recent job of that name)."""
    # Names and fingerprints only: list_jobs' counts scan samples and verdicts (54 ms at 1M).
    jobs = [{"job": r[0], "name": r[1]} for r in con.execute(
        "SELECT fingerprint, name FROM jobs ORDER BY name, created_at DESC, fingerprint").fetchall()]
    if not jobs:
        raise UnknownJob("the database holds no jobs yet")
    if job is None:
        if len(jobs) == 1:
            return jobs[0]["job"]
        raise UnknownJob("several jobs in this database, name one: " + ", ".join(f"{j['name']} ({j['job']})" for j in jobs))
    exact = [j for j in jobs if j["job"] == job]
    if exact:
        return job
    named = [j for j in jobs if j["name"] == job]
    if named:  # the most recent job of that name (list_jobs puts it first)
        return named[0]["job"]
    matches = [j for j in jobs if j["job"].startswith(job)]
    if len(matches) == 1:
        return matches[0]["job"]
    known = ", ".join(f"{j['name']} ({j['job']})" for j in jobs)
    if not matches:
        raise UnknownJob(f"no job {job!r} in this database; jobs: {known}")
    raise UnknownJob(f"{job!r} matches several jobs, use the fingerprint: {known}")


@takes_store
def existing_job(con, fingerprints: list[str]) -> str | None:
    """The first of these fingerprints that names a job in this database."""
    rows = con.execute("SELECT fingerprint FROM jobs WHERE fingerprint IN (SELECT unnest(?))",
                       [fingerprints]).fetchall()
    found = {r[0] for r in rows}
    return next((f for f in fingerprints if f in found), None)


# Per sample with two or more reviews, max - min of the overall scores (bound: the job).
PER_SAMPLE_SPREAD_SQL = """SELECT max(overall) - min(overall) AS s FROM reviews WHERE job = ?
                           GROUP BY sample_id HAVING count(*) >= 2"""


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
        + _scalar(con, "SELECT count(*) FROM drops WHERE job = ? AND sample_id IS NULL", job),
        "drop_reasons": {why: n for why, n in drops},
        "rejected_by_stage": dict(con.execute(
            "SELECT stage, count(*) FROM verdicts WHERE job = ? AND decision = 'reject' GROUP BY stage ORDER BY stage",
            [job]).fetchall()),
    }


def score_distributions(con, job: str) -> dict:
    """Per rubric axis (whatever the recipe's reviewer scores): histogram, mean, stddev.
    One scan of the scores' JSON; the moments come from the histogram."""
    rows = con.execute(
        """SELECT j.key, j.value::INTEGER AS v, count(*) FROM reviews r, json_each(r.scores) j
           WHERE r.job = ? GROUP BY ALL ORDER BY ALL""", [job]).fetchall()
    hist: dict[str, dict[int, int]] = {}
    for axis, value, n in rows:
        hist.setdefault(axis, {})[value] = n
    out: dict[str, dict] = {}
    for axis, h in hist.items():
        n = sum(h.values())
        mean = sum(v * c for v, c in h.items()) / n
        var = sum(c * (v - mean) ** 2 for v, c in h.items()) / (n - 1) if n > 1 else None
        out[axis] = {"histogram": {str(v): c for v, c in h.items()}, "mean": round(mean, 3),
                     "stddev": None if var is None else round(var ** 0.5, 3)}
    overall = con.execute("SELECT avg(overall), stddev_samp(overall), min(overall), max(overall) FROM reviews "
                          "WHERE job = ?", [job]).fetchone()
    if overall[0] is not None:
        out["overall"] = {"mean": round(overall[0], 3), "stddev": None if overall[1] is None else round(overall[1], 3),
                          "min": overall[2], "max": overall[3]}
    return out


def reviewer_agreement(con, job: str) -> dict:
    """Per sample, the spread (max - min) of the reviewers' overall scores, and the share
    of reviewer pairs whose overall scores are within one point."""
    spread = con.execute(f"SELECT avg(s), median(s), count(*) FROM ({PER_SAMPLE_SPREAD_SQL})", [job]).fetchone()
    within = con.execute(
        """SELECT avg(CASE WHEN abs(a.overall - b.overall) <= 1 THEN 1.0 ELSE 0.0 END)
           FROM reviews a JOIN reviews b ON a.sample_id = b.sample_id AND a.reviewer_index < b.reviewer_index
           WHERE a.job = ?""",
        [job],
    ).fetchone()[0]
    return {
        "samples_with_2plus_reviews": spread[2],
        "mean_spread": None if spread[0] is None else round(spread[0], 3),
        "median_spread": None if spread[1] is None else round(spread[1], 3),
        "pairs_within_1_point": None if within is None else round(within, 3),
    }


def verification(con, job: str) -> dict | None:
    """Math: the verification pass rate and why items failed."""
    total, passed = con.execute("SELECT count(*), count(*) FILTER (verified) FROM verifications WHERE job = ?",
                                [job]).fetchone()
    if not total:
        return None
    failures = con.execute(
        """SELECT regexp_replace(reason, '[-0-9./]+', 'N', 'g') AS why, count(*) FROM verifications
           WHERE job = ? AND NOT verified GROUP BY why ORDER BY 2 DESC, 1""", [job]).fetchall()
    attempts = con.execute(
        """SELECT kind, status, count(*), count(*) FILTER (correct) FROM solutions WHERE job = ?
           GROUP BY ALL ORDER BY ALL""", [job]).fetchall()
    sources = dict(con.execute("SELECT reference_source, count(*) FROM verifications WHERE job = ? GROUP BY 1 ORDER BY 1",
                               [job]).fetchall())
    return {
        "verified": passed, "checked": total, "pass_rate": round(passed / total, 4),
        "failure_reasons": {why: n for why, n in failures},
        "reference_sources": sources,
        "attempts": {f"{kind}:{status}": {"count": n, "correct": c} for kind, status, n, c in attempts},
    }


def tokens_per_role(con, job: str) -> dict:
    out = {}
    for role, calls, prompt, completion, seconds in role_tokens(con, job):
        # seconds are each call's own generation time (engines run in parallel, so this is
        # per-engine throughput, not the job's wall-clock rate).
        out[role] = {"calls": calls, "prompt_tokens": prompt, "completion_tokens": completion,
                     "completion_tokens_per_second": round(completion / seconds, 2) if seconds else None}
    return out


def scripted_teacher(con, job: str) -> list[str]:
    """The roles whose rows the scripted reference teacher wrote (factory/backends/reference.py:
    backend 'reference' in the row's model lineage); [] when a model wrote every row."""
    tables = " UNION ALL ".join(f"SELECT role, model FROM {t} WHERE job = $job" for t in MODEL_MADE)
    return [r[0] for r in con.execute(
        f"""SELECT DISTINCT role FROM ({tables}) WHERE json_extract_string(model, '$.backend') = 'reference'
            ORDER BY role""", {"job": job}).fetchall()]


def signal_summary(con, job: str) -> dict:
    """Per measured signal (likelihood, truncated, expected_scores.k, ...): how many samples
    have it, its mean and range, and how many verdicts a gate of that name decided."""
    rows = con.execute(
        """SELECT regexp_replace(g.signal, '[.][0-9]+$', '') AS name, count(DISTINCT g.sample_id),
                  avg(g.value), min(g.value), max(g.value),
                  (SELECT count(*) FROM verdicts v WHERE v.job = $job AND v.stage = name)
           FROM signals g WHERE g.job = $job GROUP BY name ORDER BY name""", {"job": job}).fetchall()
    return {name: {"samples": n, "mean": None if mean is None else round(mean, 4),
                   "min": None if low is None else round(low, 4), "max": None if high is None else round(high, 4),
                   "verdicts_decided": decided}
            for name, n, mean, low, high, decided in rows}


def job_stats(con, job: str | None = None, exact: bool = False) -> dict:
    """exact=False reads the job's summaries (stores/summary_stats.py) when it has a usable
    one; exact=True, or a job without one, computes every number from the rows. Both give
    the same dict (tests/unit/test_stats_summaries.py)."""
    fingerprint = resolve_job(con, job)
    name, recipe, rule, num_samples = con.execute(
        "SELECT name, recipe, decision_rule, num_samples FROM jobs WHERE fingerprint = ?", [fingerprint]).fetchone()
    head = {"job": fingerprint, "name": name, "recipe": recipe, "num_samples": num_samples,
            "decision_rule": json.loads(rule)}
    summarized = None if exact else summarized_stats(con, fingerprint)
    if summarized is not None:
        return {**head, **summarized, **probe_stats(con, fingerprint)}
    return {**head, **exact_stats(con, fingerprint), **probe_stats(con, fingerprint)}


def exact_stats(con, fingerprint: str) -> dict:
    """Every number of job_stats (but the job's own columns and the probe) from the rows."""
    f = funnel(con, fingerprint)
    decided = f["accepted"] + f["rejected"] + (f["dropped"])
    return {
        "funnel": f,
        "adjudication_rate": round(f["adjudicated"] / f["reviewed"], 4) if f["reviewed"] else None,
        "acceptance_rate": round(f["accepted"] / decided, 4) if decided else None,
        "scores": score_distributions(con, fingerprint),
        "reviewer_agreement": reviewer_agreement(con, fingerprint),
        "tokens": tokens_per_role(con, fingerprint),
        "scripted_teacher": scripted_teacher(con, fingerprint),
        "verification": verification(con, fingerprint),
        "reviewer_alpha": krippendorff_alpha(con, fingerprint),
        "signals": signal_summary(con, fingerprint),
        **curation_stats(con, fingerprint),
    }
