"""job_stats from the per-job summaries (stores/summaries.py): the same dict as the exact
path (stores/stats.py, `factory stats --exact`), from ~200 counter rows, the diversity subset
and the small curation tables instead of every row of the job.

None when the job has no usable summary (a database from before m011 opened read-only, a
job written before its first summarized batch, rows written outside write_batch: their
counts disagree): the caller computes from rows then.
"""
from __future__ import annotations

import json
from collections import defaultdict

from stores import summaries
from stores.curation import outside_duplicate_counts
from stores.curation_stats import DISTINCT_3GRAMS_SQL, contamination
from stores.summary_sql import COUNTED, DIVERSITY_SUBSET, REMOVED, REMOVED_ACCEPTED, SUBSET_KEPT


def load(con, job: str) -> dict[str, dict[str, float]] | None:
    """name -> key -> value of a current summary that matches the job's rows, else None."""
    if not summaries.has_tables(con):
        return None
    table: dict[str, dict[str, float]] = defaultdict(dict)
    for name, key, value in con.execute("SELECT name, key, value FROM stats_summaries WHERE job = ?", [job]).fetchall():
        table[name][key] = value
    if summaries.FORMAT not in table.get("format", {}):
        return None
    counts = con.execute("SELECT " + ", ".join(f"(SELECT count(*) FROM {t} WHERE job = $job)" for t in COUNTED),
                         {"job": job}).fetchone()
    if any(table["rows"].get(t, 0) != n for t, n in zip(COUNTED, counts)):
        return None
    return table


def summarized_stats(con, job: str) -> dict | None:
    t = load(con, job)
    if t is None:
        return None
    one = (lambda name, key="": int(t[name].get(key, 0)) if name in t else 0)
    f = _funnel(t, one)
    decided = f["accepted"] + f["rejected"] + f["dropped"]
    return {
        "funnel": f,
        "adjudication_rate": round(f["adjudicated"] / f["reviewed"], 4) if f["reviewed"] else None,
        "acceptance_rate": round(f["accepted"] / decided, 4) if decided else None,
        "scores": _scores(t),
        "reviewer_agreement": _agreement(t),
        "tokens": _tokens(t),
        "scripted_teacher": sorted(t.get("scripted:max", {})),
        "verification": _verification(t, one),
        "reviewer_alpha": _alpha(t),
        "signals": _signals(t),
        **_curation(con, job, t, one),
    }


def _funnel(t, one) -> dict:
    drops = sorted(((why, int(n)) for why, n in t.get("drop_reason", {}).items()), key=lambda x: (-x[1], x[0]))
    return {
        "seeds": one("rows", "seeds"),
        "generated": one("rows", "samples"),
        "exact_duplicates": one("exact_duplicates"),
        "reviewed": one("reviewed"),
        "adjudicated": one("stage", "adjudicator"),
        "accepted": one("decision", "accept"),
        "rejected": one("decision", "reject"),
        "dropped": one("decision", "drop") + one("drops_without_sample"),
        "drop_reasons": dict(drops),
        "rejected_by_stage": {k: int(n) for k, n in sorted(t.get("reject_stage", {}).items())},
    }


def _scores(t) -> dict:
    hist: dict[str, dict[int, int]] = {}
    for key, n in sorted(((json.loads(k), n) for k, n in t.get("axis", {}).items()), key=lambda x: (x[0][0], x[0][1])):
        hist.setdefault(key[0], {})[key[1]] = int(n)
    out: dict[str, dict] = {}
    for axis, h in hist.items():  # as stores/stats.py score_distributions: the moments from the histogram
        n = sum(h.values())
        mean = sum(v * c for v, c in h.items()) / n
        var = sum(c * (v - mean) ** 2 for v, c in h.items()) / (n - 1) if n > 1 else None
        out[axis] = {"histogram": {str(v): c for v, c in h.items()}, "mean": round(mean, 3),
                     "stddev": None if var is None else round(var ** 0.5, 3)}
    n = t.get("overall_n", {}).get("", 0)
    if n:
        total, squares = t.get("overall_sum", {}).get("", 0.0), t.get("overall_sumsq", {}).get("", 0.0)
        mean = total / n
        var = max(squares - total * mean, 0.0) / (n - 1) if n > 1 else None
        out["overall"] = {"mean": round(mean, 3), "stddev": None if var is None else round(var ** 0.5, 3),
                          "min": t["overall:min"][""], "max": t["overall:max"][""]}
    return out


def _median(hist: dict[float, int]) -> float:
    """DuckDB's median of the values a histogram counts: the middle one, or the two middle
    ones' mean (interpolated as quantile_cont(0.5) does)."""
    values = sorted(hist)
    n = sum(hist.values())
    lo, hi = (n - 1) // 2, n // 2
    below, found = 0, {}
    for v in values:
        for rank in (lo, hi):
            if below <= rank < below + hist[v]:
                found[rank] = v
        below += hist[v]
    return found[lo] + (found[hi] - found[lo]) * 0.5


def _agreement(t) -> dict:
    spread = {float(k): int(n) for k, n in t.get("spread", {}).items()}
    samples = sum(spread.values())
    pairs = t.get("pairs", {}).get("", 0)
    return {
        "samples_with_2plus_reviews": samples,
        "mean_spread": round(sum(v * n for v, n in spread.items()) / samples, 3) if samples else None,
        "median_spread": round(_median(spread), 3) if samples else None,
        "pairs_within_1_point": round(t.get("pairs_within_1", {}).get("", 0) / pairs, 3) if pairs else None,
    }


def _alpha(t) -> float | None:
    """stores/curation_stats.py krippendorff_alpha from its sums: total = sum(x^2) - sum(x)^2 / n."""
    n = t.get("alpha_n", {}).get("", 0)
    if n < 2:
        return None
    total = t.get("alpha_sumsq", {}).get("", 0.0) - t.get("alpha_sum", {}).get("", 0.0) ** 2 / n
    if not total:
        return None
    return round(1 - (n - 1) * t.get("alpha_within", {}).get("", 0.0) / (n * total), 4)


def _tokens(t) -> dict:
    out = {}
    for role in sorted(t.get("tokens_calls", {})):
        completion = int(t.get("tokens_completion", {}).get(role, 0))
        seconds = t.get("tokens_seconds", {}).get(role)
        out[role] = {"calls": int(t["tokens_calls"][role]), "prompt_tokens": int(t.get("tokens_prompt", {}).get(role, 0)),
                     "completion_tokens": completion,
                     "completion_tokens_per_second": round(completion / seconds, 2) if seconds else None}
    return out


def _verification(t, one) -> dict | None:
    total = one("rows", "verifications")
    if not total:
        return None
    passed = one("verified")
    failures = sorted(((why, int(n)) for why, n in t.get("verify_failure", {}).items()), key=lambda x: (-x[1], x[0]))
    attempts = sorted((tuple(json.loads(k)), int(n), k) for k, n in t.get("attempts", {}).items())
    return {
        "verified": passed, "checked": total, "pass_rate": round(passed / total, 4),
        "failure_reasons": dict(failures),
        "reference_sources": {k: int(n) for k, n in sorted(t.get("verify_source", {}).items())},
        "attempts": {f"{kind}:{status}": {"count": n, "correct": one("attempts_correct", key)}
                     for (kind, status), n, key in attempts},
    }


def _signals(t) -> dict:
    out = {}
    stages = t.get("stage", {})
    for name in sorted(t.get("signal_samples", {})):
        n = t.get("signal_n", {}).get(name, 0)
        low, high = t.get("signal:min", {}).get(name), t.get("signal:max", {}).get(name)
        out[name] = {"samples": int(t["signal_samples"][name]),
                     "mean": round(t.get("signal_sum", {}).get(name, 0.0) / n, 4) if n else None,
                     "min": None if low is None else round(low, 4), "max": None if high is None else round(high, 4),
                     "verdicts_decided": int(stages.get(name, 0))}
    return out


def _acceptance(t, by: str) -> dict:
    samples, accepted = t.get(f"by_{by}_samples", {}), t.get(f"by_{by}_accepted", {})
    return {k: {"samples": int(n), "accepted": int(accepted.get(k, 0)), "rate": round(accepted.get(k, 0) / n, 4)}
            for k, n in sorted(samples.items())}


def _curation(con, job: str, t, one) -> dict:
    """stores/curation_stats.py curation_stats: the curation tables are read (they hold a
    pass's flags, small next to the rows); the rest comes from the counters."""
    run = con.execute("SELECT summary FROM curation_runs WHERE job = ?", [job]).fetchone()
    removed = dict(con.execute("SELECT method, count(*) FROM dedup_clusters WHERE job = ? AND NOT kept GROUP BY 1",
                               [job]).fetchall())
    total = one("rows", "samples")
    rate = (lambda n: round(n / total, 4) if total else None)
    accepted_view = one("accepted_unique") - _removed_accepted(con, job, t)
    quality = con.execute("SELECT avg(score) FROM quality_scores WHERE job = ?", [job]).fetchone()[0]
    return {
        "curated": run is not None,
        "curation_summary": json.loads(run[0]) if run else None,
        "acceptance_by_template": _acceptance(t, "template"),
        "acceptance_by_model": _acceptance(t, "model"),
        "duplicate_rates": {"exact": rate(one("exact_duplicates")), "near": rate(removed.get("near", 0)),
                            "semantic": rate(removed.get("semantic", 0))},
        "contamination": contamination(con, job),
        "outside_duplicates": outside_duplicate_counts(con, job),
        "diversity": _diversity(con, job, t, one("accepted_unique")),
        "accepted_view_rows": accepted_view,
        "mean_quality_score": None if quality is None else round(quality, 4),
    }


def _curation_state(con, job: str, t, name: str, compute):
    """A value the last curation pass stored (summaries.refresh_curation_state), or computed
    now when the curation tables or embeddings changed since (a write outside a pass)."""
    stored = t.get(name, {})
    stamp = summaries.removal_stamp(con)
    return stored[stamp] if stamp in stored else compute()


def _removed_accepted(con, job: str, t) -> int:
    """Accepted, not-duplicate samples of the job that curation took out of the accepted view."""
    return int(_curation_state(con, job, t, "removed_accepted",
                               lambda: dict(con.execute(REMOVED_ACCEPTED).fetchall()).get(job, 0)))


def _diversity(con, job: str, t, accepted_unique: int) -> dict:
    """stores/curation_stats.py diversity: the 3-gram ratio over the kept subset (exact when it
    holds every accepted sample, or when at least 20k of it survive curation; else from rows),
    the embedding distance from the curation state."""
    complete = con.execute("SELECT count(*) FROM stats_subsets WHERE job = ?", [job]).fetchone()[0] == accepted_unique
    left, distinct, total = con.execute(
        f"""WITH k AS (SELECT h, grams FROM stats_subsets c WHERE job = $job
                       AND NOT EXISTS (SELECT 1 FROM ({REMOVED}) r WHERE r.sample_id = c.sample_id)),
            top AS (SELECT grams FROM k ORDER BY h LIMIT {DIVERSITY_SUBSET})
            SELECT (SELECT count(*) FROM k), count(DISTINCT g), count(g) FROM (SELECT unnest(grams) AS g FROM top)""",
        {"job": job}).fetchone()
    if not complete and left < DIVERSITY_SUBSET:  # curation removed more than half of the kept subset
        distinct, total = con.execute(DISTINCT_3GRAMS_SQL, [job]).fetchone()
    distance = _curation_state(con, job, t, "embedding_distance", lambda: summaries.embedding_distance(con, job))
    return {"distinct_3gram_ratio": round(distinct / total, 4) if total else None,
            "mean_pairwise_embedding_distance": distance}


assert SUBSET_KEPT >= DIVERSITY_SUBSET
