"""What `factory browse` reads: a page of samples under filters and a sort. Every filter is
a bound parameter and every sort a key of SORTS: no text from a request reaches SQL as SQL.

Paged by keyset (the page after / before a sample: `after=ID`), or by OFFSET for a position
(the sample page's next / previous). No count(*): a page asks for one row more than it shows
to know whether a next page exists, and the totals come from stores/browse_summary.py.
Each sort is a tuple of never-NULL keys whose first is a column when it can be (seed_index):
DuckDB then turns the LIMIT into a filter on that column and skips row groups by their
min/max, so the first page of a 1M-sample job reads one row group of 9 (bench/browse_1m.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from stores.rows import dict_rows

PAGE = 50
INF = "'Infinity'::DOUBLE"
# Ascending keys, none NULL (a missing score or likelihood sorts last), the seed order last:
# the same tuple orders a page and compares a row with the keyset cursor. The job comes
# first only when the page shows several jobs (a constant first key would stop the row-group
# skipping above: 0.095 s -> 0.009 s for the first page's ids at 1M samples).
SORTS = {
    "seed": ("s.seed_index", "s.sample_id"),
    "score": (f"coalesce(-v.mean_score, {INF})", "s.seed_index", "s.sample_id"),
    "-score": (f"coalesce(v.mean_score, {INF})", "s.seed_index", "s.sample_id"),
    "likelihood": (f"coalesce(-lk.value, {INF})", "s.seed_index", "s.sample_id"),
    "-likelihood": (f"coalesce(lk.value, {INF})", "s.seed_index", "s.sample_id"),
}
VERDICTS = ("accept", "reject", "drop", "none")
FLAGS = ("duplicate", "near_duplicate", "contaminated", "accepted_view", "labelled", "unlabelled", "disagree")
AXIS_OF = ("mean", "review")  # an axis range on the mean of the sample's reviews, or on any one review


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
    axis_of: str | None = None  # "review": some review of the sample scored the axis within the range
    # the funnel page's other histograms, each bar's samples (the bins of stores/report.py)
    min_words: float | None = None
    max_words: float | None = None
    quality_bin: float | None = None  # least(floor(quality * 20), 19)
    spread_bin: float | None = None  # floor((max - min overall of 2+ reviews) * 2)
    q: str | None = None
    sort: str = "seed"


def tables(con) -> set[str]:
    """The database's tables and views (one made before a migration lacks its tables)."""
    return {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() UNION ALL "
                                      "SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}


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
        bounds = ("$." + f.axis, -1e308 if f.min_axis is None else f.min_axis,
                  1e308 if f.max_axis is None else f.max_axis)
        if f.axis_of == "review":
            add("""s.sample_id IN (SELECT sample_id FROM reviews r WHERE r.job = s.job
                   AND TRY_CAST(json_extract_string(r.scores, ?) AS DOUBLE) BETWEEN ? AND ?)""", *bounds)
        else:
            add("""s.sample_id IN (SELECT sample_id FROM reviews r WHERE r.job = s.job GROUP BY sample_id
                   HAVING avg(TRY_CAST(json_extract_string(r.scores, ?) AS DOUBLE)) BETWEEN ? AND ?)""", *bounds)
    if f.min_words is not None or f.max_words is not None:  # words as the report counts them: \w+ runs
        add(r"len(regexp_extract_all(s.text, '\w+')) BETWEEN ? AND ?",
            -1 if f.min_words is None else f.min_words, 2**31 if f.max_words is None else f.max_words)
    if f.quality_bin is not None and "quality_scores" not in have:
        add("false")  # never curated: no sample has a quality score
    elif f.quality_bin is not None:
        add("""s.sample_id IN (SELECT sample_id FROM quality_scores q WHERE q.job = s.job
               AND least(floor(q.score * 20), 19) = ?)""", f.quality_bin)
    if f.spread_bin is not None:
        add("""s.sample_id IN (SELECT sample_id FROM reviews r WHERE r.job = s.job GROUP BY sample_id
               HAVING count(*) >= 2 AND floor((max(overall) - min(overall)) * 2) = ?)""", f.spread_bin)
    if f.q:
        add("contains(lower(s.text), ?)", f.q.lower())  # a plain substring: no LIKE wildcards to escape
    flag = {"duplicate": "s.duplicate_of IS NOT NULL",
            "near_duplicate": "EXISTS (SELECT 1 FROM dedup_clusters d WHERE d.sample_id = s.sample_id AND NOT d.kept)",
            "contaminated": "EXISTS (SELECT 1 FROM contamination c WHERE c.sample_id = s.sample_id)",
            "accepted_view": "s.sample_id IN (SELECT sample_id FROM accepted)" if "accepted" in have else "false"}
    if "labels" in have:
        flag.update({"labelled": "mine.decision IS NOT NULL", "unlabelled": "mine.decision IS NULL",
                     "disagree": "mine.decision IS NOT NULL AND mine.decision <> coalesce(v.decision, '')"})
    if f.flag in flag:
        add(flag[f.flag])
    elif f.flag:  # a labels flag on a database without labels: nothing is labelled
        add("false" if f.flag != "unlabelled" else "true")
    return where, params


def sort_keys(f: Filters) -> tuple[str, ...]:
    return SORTS[f.sort] if f.job else ("s.job", *SORTS[f.sort])


def _beyond(keys: tuple[str, ...], values, reverse: bool) -> tuple[str, list]:
    """Rows after (reverse: before) the cursor's key values in the order of keys:
    k1 >= c1 AND (k1 > c1 OR (k2 >= c2 AND (k2 > c2 OR k3 > c3))). The leading k1 >= c1 is
    a plain range on the first key, which the scan checks against each row group's min/max."""
    op = "<" if reverse else ">"
    sql, params = f"{keys[-1]} {op} ?", [values[-1]]
    for key, value in zip(reversed(keys[:-1]), reversed(values[:-1])):
        sql, params = f"{key} {op}= ? AND ({key} {op} ? OR {sql})", [value, value, *params]
    return sql, params


def _joins(text: str, have: set[str], labeller: str, point: bool = False) -> tuple[list[str], list]:
    """The joins the SQL text reads (v., lk., mine.): none when nothing filters or sorts on
    them. point: each joined table narrowed to one sample (the cursor's, bound first)."""
    joins, params = [], []
    one = " WHERE sample_id = $id" if point else ""
    if "v." in text:
        joins.append(f"LEFT JOIN (SELECT * FROM verdicts{one}) v ON v.sample_id = s.sample_id")
    if "lk." in text:
        joins.append(f"LEFT JOIN (SELECT * FROM signals{one}) lk ON lk.sample_id = s.sample_id "
                     "AND lk.signal = 'likelihood'" if "signals" in have else
                     "LEFT JOIN (SELECT NULL::VARCHAR AS sample_id, NULL::DOUBLE AS value) lk ON false")
    if "mine." in text:
        joins.append("LEFT JOIN labels mine ON mine.sample_id = s.sample_id AND mine.labeller = ?")
        params.append(labeller)
    return joins, params


def cursor(con, f: Filters, have: set[str], sample_id: str) -> list | None:
    """The sort keys' values of one sample (None: no such sample): where a keyset page starts."""
    keys = sort_keys(f)
    joins, _ = _joins(" ".join(keys), have, "", point=True)
    row = con.execute(f"SELECT {', '.join(keys)} FROM (SELECT * FROM samples WHERE sample_id = $id) s "
                      f"{' '.join(joins)}", {"id": sample_id}).fetchone()
    return list(row) if row else None


def _ids(con, f: Filters, have: set[str], labeller: str, offset: int, limit: int,
         start: list | None = None, reverse: bool = False) -> list[str]:
    """The page's sample ids in order (reverse: the rows before start, nearest first),
    joining only what the filters and the sort read: the first page of a 1M-sample job is
    then a top-N over samples alone. start: the keyset cursor's values (cursor())."""
    where, params = _where(f, have)
    keys = sort_keys(f)
    if start is not None:
        sql, values = _beyond(keys, start, reverse)
        where.append(sql)
        params.extend(values)
    joins, join_params = _joins(" ".join(where) + " " + " ".join(keys), have, labeller)
    order = ", ".join(k + (" DESC" if reverse else "") for k in keys)
    sql = f"""SELECT s.sample_id FROM samples s {' '.join(joins)} {'WHERE ' + ' AND '.join(where) if where else ''}
              ORDER BY {order} LIMIT ? OFFSET ?"""
    return [r[0] for r in con.execute(sql, join_params + params + [limit, offset]).fetchall()]


def page(con, f: Filters, labeller: str, offset: int = 0, limit: int = PAGE, after: str | None = None,
         before: str | None = None) -> list[dict]:
    """limit + 1 rows at most (the extra one says a next page exists; with before, a
    previous one, and it comes first): id, job, seed index, the first 200 characters,
    verdict, stage, mean score, likelihood, duplicate, my label. after / before: the rows
    after / before that sample in this order (keyset; offset then counts from there).
    The ids first (_ids), then each table's columns by a list of ids: DuckDB answers
    `sample_id IN (?, ?, ...)` of constants from the primary key's index (4 ms for 51 ids at
    1M samples against 0.3 s for the same rows joined). A database made before the signals
    or labels tables (read, not migrated) has neither. LookupError: no such cursor sample."""
    have = tables(con)
    start = None
    if after or before:
        start = cursor(con, f, have, after or before)
        if start is None:
            raise LookupError(f"no sample {after or before!r} to page from")
    ids = _ids(con, f, have, labeller, offset, limit + 1, start, reverse=bool(before) and not after)
    if before and not after:
        ids.reverse()
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
                f"SELECT sample_id, signal, value FROM signals WHERE signal = 'likelihood' AND sample_id IN ({marks})",
                ids).fetchall():
            rows[sid]["likelihood"] = value
    if "labels" in have:
        for sid, decision in con.execute(f"SELECT sample_id, decision FROM labels WHERE labeller = ? "
                                         f"AND sample_id IN ({marks})", [labeller, *ids]).fetchall():
            rows[sid]["my_label"] = decision
    return [rows[sid] for sid in ids]


def verdict_score_bins(con, job: str) -> list[tuple[int, int]]:
    """(whole-point bin of a verdict's mean review score, samples), lowest first; the funnel
    page's chart, each bar listed by min_score..max_score."""
    return con.execute("""SELECT floor(mean_score)::INTEGER AS b, count(*) FROM verdicts
                          WHERE job = ? AND mean_score IS NOT NULL GROUP BY b ORDER BY b""", [job]).fetchall()


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
