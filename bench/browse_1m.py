"""`factory browse` on a 1M-sample store: the first list page and filtered pages, each a whole
HTTP request through the app (open the database read-only, the page's query, the template,
close), against the raw DuckDB query of the same rows on an open connection (the floor); and
the sample page. Median of --repeats after one warm-up each. The raw query is the page's
rows as one plain statement (samples joined to verdicts and the likelihood, filtered,
ordered, LIMIT 51): what a browser that simply queried would pay; the app asks for the ids
first and then each table's columns by id (stores/browse.py), which is why it can be faster.

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

# name -> (the page's query string, the raw query of the same rows: the page's columns,
# filters and order, LIMIT 51 as the page asks)
RAW = """SELECT s.sample_id, s.seed_index, left(s.text, 200), v.decision, v.stage, v.mean_score, g.value
         FROM samples s LEFT JOIN verdicts v USING (sample_id)
         LEFT JOIN signals g ON g.sample_id = s.sample_id AND g.signal = 'likelihood'
         WHERE s.job = ? {where} ORDER BY {order} LIMIT 51"""
SEED_ORDER = "s.job, s.seed_index, s.sample_id"
CASES = {
    "first page": ({}, RAW.format(where="", order=SEED_ORDER)),
    "verdict reject, score 6-8, by score": (
        {"verdict": "reject", "min_score": 6, "max_score": 8, "sort": "score"},
        RAW.format(where="AND v.decision = 'reject' AND v.mean_score BETWEEN 6 AND 8",
                   order="v.mean_score DESC NULLS LAST, " + SEED_ORDER)),
    "likelihood < -3": ({"max_likelihood": -3}, RAW.format(where="AND g.value <= -3", order=SEED_ORDER)),
    "text search 'w17 w4'": ({"q": "w17 w4"}, RAW.format(where="AND s.text ILIKE '%w17 w4%'", order=SEED_ORDER)),
    "page 1,000 (offset 49,950)": ({"offset": 49_950}, RAW.format(where="", order=SEED_ORDER) + " OFFSET 49950"),
}


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
    pages, rows = {}, {}
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        for name, (params, _) in CASES.items():
            def page(params=params):
                r = client.get("/", params=params)
                assert r.status_code == 200, r.text[:500]
                return r
            rows[name] = page().text.count('<tr class="row"')
            pages[name] = timed(page, args.repeats)
        sid = f"{JOB}-s-{args.samples // 2}"
        t_sample = timed(lambda: client.get(f"/sample/{sid}"), args.repeats)
    con = duckdb.connect(str(path), read_only=True)
    raws = {name: timed(lambda raw=raw: con.execute(raw, [JOB]).fetchall(), args.repeats)
            for name, (_, raw) in CASES.items()}
    con.close()
    print(f"{'page':40} {'HTTP page s':>11} {'raw query s':>11} {'ratio':>7} rows")
    for name in CASES:
        print(f"{name:40} {pages[name]:11.3f} {raws[name]:11.3f} {pages[name] / raws[name]:7.1f} {rows[name]}")
    print(f"sample page (factory explain's story, rendered): {t_sample:.3f} s")
    first = "first page"
    print(f"ratio HTTP page / raw query (first page): {pages[first] / raws[first]:.1f}")
    print(f"slowest HTTP page: {max(pages.values()):.3f} s")
    print(f"load average after: {os.getloadavg()[0]:.2f}")

if __name__ == "__main__":
    main()
