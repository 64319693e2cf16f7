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
    "likelihood": "likelihood DESC NULLS LAST, s.job, s.seed_index, s.sample_id",
    "-likelihood": "likelihood ASC NULLS LAST, s.job, s.seed_index, s.sample_id",
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
    if f.q:
        add("s.text ILIKE ? ESCAPE '\\'", "%" + f.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
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


def page(con, f: Filters, labeller: str, offset: int = 0, limit: int = PAGE) -> list[dict]:
    """limit + 1 rows at most (the extra one says a next page exists): id, job, seed index,
    the first 200 characters, verdict, stage, mean score, likelihood, duplicate, my label.
    A database made before the signals or labels tables (read, not migrated) has neither."""
    have = tables(con)
    joins, params = [], []
    if "signals" in have:
        joins.append("LEFT JOIN signals lk ON lk.sample_id = s.sample_id AND lk.signal = 'likelihood'")
    else:
        joins.append("LEFT JOIN (SELECT NULL::VARCHAR AS sample_id, NULL::DOUBLE AS value) lk ON false")
    if "labels" in have:
        joins.append("LEFT JOIN labels mine ON mine.sample_id = s.sample_id AND mine.labeller = ?")
        params.append(labeller)
    else:
        joins.append("LEFT JOIN (SELECT NULL::VARCHAR AS decision) mine ON false")
    where, where_params = _where(f, have)
    sql = f"""SELECT s.sample_id, s.job, s.seed_index, left(s.text, 200) AS snippet, v.decision, v.stage,
                     v.mean_score, lk.value AS likelihood, s.duplicate_of IS NOT NULL AS duplicate,
                     mine.decision AS my_label
              FROM samples s LEFT JOIN verdicts v ON v.sample_id = s.sample_id {' '.join(joins)}
              {'WHERE ' + ' AND '.join(where) if where else ''}
              ORDER BY {SORTS[f.sort]} LIMIT ? OFFSET ?"""
    return dict_rows(con, sql, params + where_params + [limit + 1, offset])


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
