"""`factory browse` on a 1M-sample store: the first list page and filtered pages, each a whole
HTTP request through the app (open the database read-only, the page's queries, the template,
close), against the raw DuckDB query of the same rows on an open connection (the floor); and
the sample page and the funnel page (its histograms read every text once per state of the
database: timed cold and warm). Median of --repeats after one warm-up each.

Before and after in the same run: the statements a list page ran before this design
(PREVIOUS below: OFFSET paging with the job first in every sort, `SELECT DISTINCT stage`
over every verdict, every signal of the page's ids) against this design's (keyset paging,
a sort that starts at seed_index, the per-state summary: stores/browse.py,
stores/browse_summary.py), each on a freshly opened connection as a request opens one.

  .venv/bin/python bench/browse_1m.py --samples 1000000 --db /tmp/browse_1m.duckdb

(tests/bench/test_bench_smoke.py runs it with --samples 2000 --repeats 1.)

The store is bench/stats_1m.py's fill() (the real migrations, one tinystories-shaped job: 3
reviews a sample, ~70% accepted, 30 words a text) plus a likelihood signal for every sample
(the list shows it and filters on it) and 1,000 human labels.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).parent))

from stats_1m import JOB, fill  # noqa: E402 - the same synthetic store as the stats bench

from stores import Store  # noqa: E402
from stores import browse as q  # noqa: E402
from stores.browse_summary import summary  # noqa: E402
from stores.snapshot import open_for_reading  # noqa: E402

# name -> (the page's query string, the raw query of the same rows: the page's columns,
# filters and order, LIMIT 51 as the page asks)
RAW = """SELECT s.sample_id, s.seed_index, left(s.text, 200), v.decision, v.stage, v.mean_score, g.value
         FROM samples s LEFT JOIN verdicts v USING (sample_id)
         LEFT JOIN signals g ON g.sample_id = s.sample_id AND g.signal = 'likelihood'
         WHERE s.job = ? {where} ORDER BY {order} LIMIT 51"""
SEED_ORDER = "s.job, s.seed_index, s.sample_id"
DEEP = 49_950  # page 1,000: OFFSET before, a keyset cursor (the row before it) now


def cases(samples: int) -> dict:
    deep = min(DEEP, max(samples - 60, 1))
    return {
        "first page": ({}, RAW.format(where="", order=SEED_ORDER)),
        "verdict reject, score 6-8, by score": (
            {"verdict": "reject", "min_score": 6, "max_score": 8, "sort": "score"},
            RAW.format(where="AND v.decision = 'reject' AND v.mean_score BETWEEN 6 AND 8",
                       order="v.mean_score DESC NULLS LAST, " + SEED_ORDER)),
        "likelihood < -3": ({"max_likelihood": -3}, RAW.format(where="AND g.value <= -3", order=SEED_ORDER)),
        "text search 'w17 w4'": ({"q": "w17 w4"}, RAW.format(where="AND s.text ILIKE '%w17 w4%'", order=SEED_ORDER)),
        "page 1,000 (offset 49,950)": ({"offset": deep, "after": f"{JOB}-s-{deep - 1}"},
                                       RAW.format(where="", order=SEED_ORDER) + f" OFFSET {deep}"),
    }


# The previous design's sorts: the job first, then the order (stores/browse.py before keyset paging).
PREVIOUS = {"seed": "s.job, s.seed_index, s.sample_id",
            "score": "v.mean_score DESC NULLS LAST, s.job, s.seed_index, s.sample_id"}


def previous_page(con, f, offset: int) -> int:
    """The statements the list page ran per request before this design: ids by OFFSET under a
    job-first sort, each table's columns by id (every signal), DISTINCT stage, jobs, axes."""
    have = q.tables(con)
    where, params = q._where(f, have)
    joins, join_params = q._joins(" ".join(where) + " " + PREVIOUS[f.sort], have, "bench")
    ids = [r[0] for r in con.execute(
        f"SELECT s.sample_id FROM samples s {' '.join(joins)} WHERE {' AND '.join(where)} "
        f"ORDER BY {PREVIOUS[f.sort]} LIMIT 51 OFFSET ?", join_params + params + [offset]).fetchall()]
    marks = ", ".join("?" * len(ids))
    con.execute(f"SELECT sample_id, job, seed_index, left(text, 200) FROM samples WHERE sample_id IN ({marks})", ids)
    con.execute(f"SELECT sample_id, decision, stage, mean_score FROM verdicts WHERE sample_id IN ({marks})", ids)
    con.execute(f"SELECT sample_id, signal, value FROM signals WHERE sample_id IN ({marks})", ids).fetchall()
    con.execute(f"SELECT sample_id, decision FROM labels WHERE labeller = 'bench' AND sample_id IN ({marks})", ids)
    con.execute("SELECT DISTINCT stage FROM verdicts ORDER BY stage").fetchall()
    q.rubric_axes(con, f.job)
    return len(ids)


def current_page(con, f, offset: int, after: str | None, known) -> int:
    """This design's statements for the same page (the summary computed once, outside)."""
    rows = q.page(con, f, "bench", 0 if after else offset, after=after)
    known.upto(f.job, f.verdict, f.stage)
    q.rubric_axes(con, f.job)
    return len(rows)


def timed(fn, repeats: int) -> float:
    fn()  # warm-up: the catalog, the first reads of each column
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def build(path: Path, samples: int, words: int) -> None:
    path.unlink(missing_ok=True)
    with Store(path) as store:
        fill(store.con, JOB, samples, words)
        store.con.execute(f"""INSERT INTO signals (sample_id, job, signal, value, role)
            SELECT '{JOB}-s-' || i, '{JOB}', 'likelihood', -1.0 - (hash(i * 31) % 400) / 100.0, 'likelihood'
            FROM range({samples}) t(i)""")
        store.con.execute(f"""INSERT INTO labels (sample_id, job, labeller, decision, scores, note, source)
            SELECT '{JOB}-s-' || i, '{JOB}', 'bench', CASE WHEN i % 3 = 0 THEN 'reject' ELSE 'accept' END, '{{}}',
                   NULL, 'bench' FROM range(0, {samples}, greatest({samples} // 1000, 1)) t(i)""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--words", type=int, default=30)
    parser.add_argument("--db", default="/tmp/browse_1m.duckdb")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="time the store --db already holds (built by a "
                        "previous run with the same --samples) instead of building it again")
    args = parser.parse_args()
    from starlette.testclient import TestClient

    from factory.browse.app import make_app

    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores; anything over ~0.3 means a neighbour shares them)")
    path = Path(args.db)
    start = time.perf_counter()
    if args.reuse and path.exists():
        print(f"reusing {path} ({path.stat().st_size / 2**30:.2f} GiB)")
    else:
        build(path, args.samples, args.words)
        print(f"built {args.samples:,} samples in {time.perf_counter() - start:.0f} s, "
              f"{path.stat().st_size / 2**30:.2f} GiB")

    # Pages first, with no other connection open: each request really opens the file (DuckDB
    # shares one instance between a process's connections to a file while any is open).
    app = make_app(path, JOB, port=8765, labeller="bench", peers=("testclient",))
    pages, rows, named = {}, {}, cases(args.samples)
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        start = time.perf_counter()
        client.get("/funnel")
        t_funnel_cold = time.perf_counter() - start
        t_funnel = timed(lambda: client.get("/funnel"), args.repeats)
        for name, (params, _) in named.items():
            def page(params=params):
                r = client.get("/", params=params)
                assert r.status_code == 200, r.text[:500]
                return r
            rows[name] = page().text.count('<tr class="row"')
            pages[name] = timed(page, args.repeats)
        sid = f"{JOB}-s-{args.samples // 2}"
        t_sample = timed(lambda: client.get(f"/sample/{sid}"), args.repeats)

    def fresh(fn):  # a connection opened and closed around each statement set, as a request does
        def run():
            con = open_for_reading(path)
            try:
                return fn(con)
            finally:
                con.close()
        return run

    start = time.perf_counter()
    known = fresh(summary)()
    t_summary = time.perf_counter() - start
    before, after = {}, {}
    for name, (params, _) in named.items():
        f = q.Filters(job=JOB, **{k: v for k, v in params.items() if k not in ("offset", "after")})
        offset = params.get("offset", 0)
        before[name] = timed(fresh(lambda con, f=f, o=offset: previous_page(con, f, o)), args.repeats)
        after[name] = timed(fresh(lambda con, f=f, o=offset, a=params.get("after"): current_page(con, f, o, a, known)),
                            args.repeats)
    con = duckdb.connect(str(path), read_only=True)
    raws = {name: timed(lambda raw=raw: con.execute(raw, [JOB]).fetchall(), args.repeats)
            for name, (_, raw) in named.items()}
    con.close()
    print(f"{'page':40} {'HTTP page s':>11} {'raw query s':>11} {'ratio':>7} rows")
    for name in named:
        print(f"{name:40} {pages[name]:11.3f} {raws[name]:11.3f} {pages[name] / raws[name]:7.1f} {rows[name]}")
    print(f"\n{'statements of a list page':40} {'previous s':>11} {'this s':>11} {'ratio':>7}")
    for name in named:
        print(f"{name:40} {before[name]:11.3f} {after[name]:11.3f} {after[name] / before[name]:7.2f}")
    print(f"summary (once per state of the database): {t_summary:.3f} s")
    print(f"sample page (factory explain's story, rendered): {t_sample:.3f} s")
    print(f"funnel page with the report's histograms: {t_funnel_cold:.3f} s cold, {t_funnel:.3f} s warm")
    first = "first page"
    print(f"ratio HTTP page / raw query (first page): {pages[first] / raws[first]:.1f}")
    print(f"ratio this / previous statements (first page): {after[first] / before[first]:.2f}")
    print(f"ratio this / previous statements (filtered, verdict reject): "
          f"{after['verdict reject, score 6-8, by score'] / before['verdict reject, score 6-8, by score']:.2f}")
    print(f"slowest HTTP page: {max(pages.values()):.3f} s")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
