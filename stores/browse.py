"""What `factory browse` reads: a page of samples under filters and a sort, and the funnel's
score bins. Every filter is a bound parameter and every sort a key of SORTS: no text from a
request reaches SQL as SQL.

Paged with LIMIT/OFFSET and no count(*): a page asks for one row more than it shows to know
whether a next page exists, so the first page of a 1M-sample job reads a top-N, not the
whole filtered set (bench/browse_1m.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from stores.rows import dict_rows

PAGE = 50
SORTS = {
    "seed": "s.job, s.seed_index, s.sample_id",
    "score": "v.mean_score DESC NULLS LAST, s.job, s.seed_index, s.sample_id",
    "-score": "v.mean_score ASC NULLS LAST, s.job, s.seed_index, s.sample_id",
    "likelihood": "lk.value DESC NULLS LAST, s.job, s.seed_index, s.sample_id",
    "-likelihood": "lk.value ASC NULLS LAST, s.job, s.seed_index, s.sample_id",
}
VERDICTS = ("accept", "reject", "drop", "none")
FLAGS = ("duplicate", "near_duplicate", "contaminated", "labelled", "unlabelled", "disagree")


@dataclass(frozen=True)
class Filters:
    """A list page's filters, as parsed from the query string (app.py checks each)."""
    job: str | None = None
    verdict: str | None = None
    stage: str | None = None
    min_score: float | None = None
    max_score: float | None = None
    min_likelihood: float | None = None
    max_likelihood: float | None = None
    flag: str | None = None
    axis: str | None = None  # a rubric axis: its mean over the sample's reviews within min_axis..max_axis
    min_axis: float | None = None
    max_axis: float | None = None
    q: str | None = None
    sort: str = "seed"


def tables(con) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}


def _where(f: Filters, have: set[str]) -> tuple[list[str], list]:
    where, params = [], []

    def add(sql: str, *values) -> None:
        where.append(sql)
        params.extend(values)

    if f.job:
        add("s.job = ?", f.job)
    if f.verdict == "none":
        add("v.decision IS NULL")
    elif f.verdict:
        add("v.decision = ?", f.verdict)
    if f.stage:
        add("v.stage = ?", f.stage)
    if f.min_score is not None:
        add("v.mean_score >= ?", f.min_score)
    if f.max_score is not None:
        add("v.mean_score <= ?", f.max_score)
    if f.min_likelihood is not None:
        add("lk.value >= ?", f.min_likelihood)
    if f.max_likelihood is not None:
        add("lk.value <= ?", f.max_likelihood)
    if f.axis and (f.min_axis is not None or f.max_axis is not None):
        # one JSON read per review of the job: only when asked (several seconds at 1M samples)
        path = "$." + f.axis
        add("""s.sample_id IN (SELECT sample_id FROM reviews r WHERE r.job = s.job GROUP BY sample_id
               HAVING avg(TRY_CAST(json_extract_string(r.scores, ?) AS DOUBLE)) BETWEEN ? AND ?)""",
            path, -1e308 if f.min_axis is None else f.min_axis, 1e308 if f.max_axis is None else f.max_axis)
    if f.q:
        add("contains(lower(s.text), ?)", f.q.lower())  # a plain substring: no LIKE wildcards to escape
    flag = {"duplicate": "s.duplicate_of IS NOT NULL",
            "near_duplicate": "EXISTS (SELECT 1 FROM dedup_clusters d WHERE d.sample_id = s.sample_id AND NOT d.kept)",
            "contaminated": "EXISTS (SELECT 1 FROM contamination c WHERE c.sample_id = s.sample_id)"}
    if "labels" in have:
        flag.update({"labelled": "mine.decision IS NOT NULL", "unlabelled": "mine.decision IS NULL",
                     "disagree": "mine.decision IS NOT NULL AND mine.decision <> coalesce(v.decision, '')"})
    if f.flag in flag:
        add(flag[f.flag])
    elif f.flag:  # a labels flag on a database without labels: nothing is labelled
        add("false" if f.flag != "unlabelled" else "true")
    return where, params


def _ids(con, f: Filters, have: set[str], labeller: str, offset: int, limit: int) -> list[str]:
    """The page's sample ids in order, joining only what the filters and the sort read: the
    first page of a 1M-sample job is then a top-N over samples alone."""
    where, params = _where(f, have)
    text = " ".join(where) + " " + SORTS[f.sort]
    joins, join_params = [], []
    if "v." in text:
        joins.append("LEFT JOIN verdicts v ON v.sample_id = s.sample_id")
    if "lk." in text:
        joins.append("LEFT JOIN signals lk ON lk.sample_id = s.sample_id AND lk.signal = 'likelihood'"
                     if "signals" in have else "LEFT JOIN (SELECT NULL::VARCHAR AS sample_id, NULL::DOUBLE AS value) lk ON false")
    if "mine." in text:
        joins.append("LEFT JOIN labels mine ON mine.sample_id = s.sample_id AND mine.labeller = ?")
        join_params.append(labeller)
    sql = f"""SELECT s.sample_id FROM samples s {' '.join(joins)} {'WHERE ' + ' AND '.join(where) if where else ''}
              ORDER BY {SORTS[f.sort]} LIMIT ? OFFSET ?"""
    return [r[0] for r in con.execute(sql, join_params + params + [limit, offset]).fetchall()]


def page(con, f: Filters, labeller: str, offset: int = 0, limit: int = PAGE) -> list[dict]:
    """limit + 1 rows at most (the extra one says a next page exists): id, job, seed index,
    the first 200 characters, verdict, stage, mean score, likelihood, duplicate, my label.
    The ids first (_ids), then each table's columns by a list of ids: DuckDB answers
    `sample_id IN (?, ?, ...)` of constants from the primary key's index (4 ms for 51 ids at
    1M samples against 0.3 s for the same rows joined). A database made before the signals
    or labels tables (read, not migrated) has neither."""
    have = tables(con)
    ids = _ids(con, f, have, labeller, offset, limit + 1)
    if not ids:
        return []
    marks = ", ".join("?" * len(ids))
    rows = {r["sample_id"]: {**r, "decision": None, "stage": None, "mean_score": None, "likelihood": None,
                             "my_label": None}
            for r in dict_rows(con, f"""SELECT sample_id, job, seed_index, left(text, 200) AS snippet,
                                        duplicate_of IS NOT NULL AS duplicate FROM samples
                                        WHERE sample_id IN ({marks})""", ids)}
    for sid, decision, stage, mean in con.execute(
            f"SELECT sample_id, decision, stage, mean_score FROM verdicts WHERE sample_id IN ({marks})", ids).fetchall():
        rows[sid].update(decision=decision, stage=stage, mean_score=mean)
    if "signals" in have:
        for sid, signal, value in con.execute(
                f"SELECT sample_id, signal, value FROM signals WHERE sample_id IN ({marks})", ids).fetchall():
            if signal == "likelihood":
                rows[sid]["likelihood"] = value
    if "labels" in have:
        for sid, decision in con.execute(f"SELECT sample_id, decision FROM labels WHERE labeller = ? "
                                         f"AND sample_id IN ({marks})", [labeller, *ids]).fetchall():
            rows[sid]["my_label"] = decision
    return [rows[sid] for sid in ids]


def score_bins(con, job: str) -> list[tuple[int, int]]:
    """(floor of the verdict's mean score, samples): the funnel page's histogram."""
    return con.execute("""SELECT floor(mean_score)::INTEGER AS b, count(*) FROM verdicts
                          WHERE job = ? AND mean_score IS NOT NULL GROUP BY b ORDER BY b""", [job]).fetchall()


def stages(con) -> list[str]:
    return [r[0] for r in con.execute("SELECT DISTINCT stage FROM verdicts ORDER BY stage").fetchall()]


def jobs(con) -> list[dict]:
    return dict_rows(con, "SELECT fingerprint, name, recipe FROM jobs ORDER BY name, created_at DESC, fingerprint")


def rubric_axes(con, job: str) -> list[str]:
    """The axes the job's reviewers scored (from one review: every review has the rubric's)."""
    row = con.execute("SELECT scores FROM reviews WHERE job = ? LIMIT 1", [job]).fetchone()
    if not row or not row[0]:
        return []
    import json

    scores = json.loads(row[0]) if isinstance(row[0], str) else row[0]
    return [a for a, v in scores.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]


def cluster_members(con, sample_id: str) -> list[dict]:
    """The other members of the sample's near / semantic duplicate clusters (and the samples
    that are exact duplicates of it, or it of them): method, sample, kept."""
    return dict_rows(con, """
        SELECT d.method, d.sample_id, d.kept, d.similarity FROM dedup_clusters d
        WHERE (d.method, d.cluster_id) IN (SELECT (method, cluster_id) FROM dedup_clusters WHERE sample_id = ?)
          AND d.sample_id <> ?
        UNION ALL
        SELECT 'exact', s.sample_id, s.duplicate_of IS NULL, 1.0 FROM samples s
        WHERE s.sample_id <> ? AND (s.duplicate_of = ? OR s.sample_id = (SELECT duplicate_of FROM samples WHERE sample_id = ?))
        ORDER BY 1, 2""", [sample_id] * 5)
