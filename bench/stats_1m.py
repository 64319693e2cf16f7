"""job_stats on a 1M-sample store: `factory stats` (the per-job summaries, stores/summaries.py)
and `factory stats --exact` (every number from the rows) against the funnel query alone (the
floor), in the same run; a per-part profile of the exact path (time and peak memory); the
cost of keeping the summaries: the back-fill of a store that has none, and write_batch with
against without its summary update.

  .venv/bin/python bench/stats_1m.py --samples 1000000 --db /tmp/stats_1m.duckdb

(tests/bench/test_bench_smoke.py runs it with --samples 2000 --other-samples 500 --repeats 1.)

The store is made by Store(path) (so the real migrations run) and filled straight with
INSERT ... SELECT FROM range(): one job of --samples samples shaped like tinystories (3
reviews each with the real rubric: 4 axes 1-10, overall = their mean, so 37 distinct overall
values; an age-group label), a verdict for every sample (~70% accept, 20% reject, 10% drop;
15% by the adjudicator), drops for 1 sample in 7, 1% exact duplicates, quality scores for all
and 2% near-dup cluster rows (a curated store), plus a second, 100k-sample job: every
`WHERE job = ?` has rows to skip, and the parts too big to run at 1M are measured on it.
No embeddings: 1M x 384 floats is 1.5 GB, and diversity() would fetch each accepted one.
Texts are --words words from a 500-word vocabulary (real stories are ~150 words; diversity()
tokenizes every accepted text in Python, so its time and memory grow with this).

Krippendorff's alpha and the distinct 3-gram ratio are computed in SQL (stores/
curation_stats.py): the krippendorff package builds (units x V x V) float64 arrays, ~33 GB at
1M units, and the Python 3-gram count took 18.8 s and 3.9 GB at 1M. The package is run here on
the 100k job only, to show both give the same alpha.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from stores import Store
from stores import curation_stats as cs
from stores import stats, summaries, summary_stats
from stores.store import TABLES_WRITTEN_PER_BATCH, BatchRows
from stores.transaction import transaction

JOB, OTHER = "bench1m", "other100k"

def fill(con, job: str, n: int, words: int) -> None:
    p = f"'{job}'"
    # Named columns: migrations add columns (m003 curation, m005 role), a positional insert broke.
    con.execute(f"""INSERT INTO jobs (fingerprint, name, recipe, spec, decision_rule, num_samples, created_at)
                    VALUES ({p}, {p}, 'tinystories', '{{}}',
                    '{{"accept_mean": 7, "max_spread": 2, "reject_mean": 4}}', {n}, now())""")
    con.execute(f"INSERT INTO seeds SELECT {p} || '-seed-' || i, {p}, i, json_object('i', i) FROM range({n}) t(i)")
    # a deterministic pseudo-random text per sample: word k of sample i is vocab[hash(i, k) % 500]
    con.execute(f"""INSERT INTO samples (sample_id, job, seed_id, seed_index, text, content_hash, duplicate_of,
                      rule_checks, template, template_sha256, role_version, model, sampling, request_seed,
                      request_key, prompt_tokens, completion_tokens, seconds, role)
        SELECT {p} || '-s-' || i, {p}, {p} || '-seed-' || i, i, txt, md5(txt),
               CASE WHEN i % 100 = 99 THEN {p} || '-s-' || (i - 1) END, '{{}}',
               'tinystories/generator@1', 'abc', 1,
               CASE WHEN i % 3 = 0 THEN '{{"backend": "llamacpp", "model": "smollm2-360m"}}'
                    ELSE '{{"backend": "llamacpp", "model": "smollm2-135m"}}' END,
               '{{"temperature": 0.8}}', i * 7919, md5(i::VARCHAR), 120, 150 + i % 100, 0.5, 'generator'
        FROM (SELECT i, array_to_string([('w' || (hash(i * 1000 + k) % 500)) FOR k IN range({words})], ' ') AS txt
              FROM range({n}) t(i))""")
    con.execute(f"""INSERT INTO reviews (review_id, job, sample_id, reviewer_index, scores, overall, label, critique,
                      template, model, prompt_tokens, completion_tokens, seconds, role)
        SELECT {p} || '-r-' || i || '-' || r, {p}, {p} || '-s-' || i, r,
               json_object('grammar', a, 'creativity', b, 'consistency', c, 'plot', d), (a + b + c + d) / 4,
               ['3-5', '6-8', '9-12', '13+'][(1 + hash(i * 16 + r * 4 + 5) % 4)::BIGINT], 'fine',
               'tinystories/reviewer@1', '{{"model": "smollm2-135m"}}', 300, 60, 0.2, 'reviewer'
        -- one hash per (i, r, axis): hash(i, r, k) with several arguments gave sums of one parity
        FROM (SELECT i, r, 1 + hash(i * 16 + r * 4) % 10 AS a, 1 + hash(i * 16 + r * 4 + 1) % 10 AS b,
                     1 + hash(i * 16 + r * 4 + 2) % 10 AS c, 1 + hash(i * 16 + r * 4 + 3) % 10 AS d
              FROM range({n}) t(i), range(3) u(r))""")
    con.execute(f"""INSERT INTO verdicts (sample_id, job, decision, stage, reason, mean_score, spread, n_reviews,
                                          prompt_tokens, completion_tokens, seconds, role)
        SELECT {p} || '-s-' || i, {p},
               CASE WHEN i % 10 < 7 THEN 'accept' WHEN i % 10 < 9 THEN 'reject' ELSE 'drop' END,
               CASE WHEN i % 20 < 3 THEN 'adjudicator' WHEN i % 10 = 9 THEN 'no_valid_reviews' ELSE 'reviewers' END,
               'mean 7.00 >= 7', 7.0, 1.0, 3,
               CASE WHEN i % 20 < 3 THEN 400 END, CASE WHEN i % 20 < 3 THEN 40 END, CASE WHEN i % 20 < 3 THEN 0.3 END,
               CASE WHEN i % 20 < 3 THEN 'adjudicator' END
        FROM range({n}) t(i)""")
    con.execute(f"""INSERT INTO drops (drop_id, job, seed_id, sample_id, role, reviewer_index, reason, raw_text)
        SELECT {p} || '-d-' || i, {p}, {p} || '-seed-' || i, {p} || '-s-' || i,
               CASE WHEN i % 200 = 0 THEN 'generator' ELSE 'reviewer' END, 0,
               CASE WHEN i % 2 = 0 THEN 'unparseable score' ELSE 'missing axis' END, 'garbled'
        FROM range(0, {n}, 7) t(i)""")
    con.execute(f"""INSERT INTO quality_scores (sample_id, job, score, components) SELECT {p} || '-s-' || i, {p}, (hash(i) % 1000) / 1000.0, '{{}}'
                    FROM range({n}) t(i)""")
    con.execute(f"""INSERT INTO dedup_clusters (job, method, cluster_id, sample_id, kept, similarity) SELECT {p}, 'near', {p} || '-c-' || (i // 2), {p} || '-s-' || i,
                    i % 2 = 0, 0.85 FROM range(0, {n} // 50) t(i)""")


def peak_gb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 2**20


def measure(fn, repeats: int) -> tuple[float, float]:
    """(best seconds, peak resident GB during the calls): VmHWM reset first (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best, peak_gb()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--other-samples", type=int, default=100_000,
                        help="size of the second job (rows every `WHERE job = ?` skips; the krippendorff check runs on it)")
    parser.add_argument("--words", type=int, default=30)
    parser.add_argument("--db", default="/tmp/stats_1m.duckdb")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-seeds", type=int, default=64, help="seeds per batch of the write_batch comparison")
    parser.add_argument("--batches", type=int, default=10)
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores; anything over ~0.3 means a neighbour shares them)")
    path = Path(args.db)
    path.unlink(missing_ok=True)
    start = time.perf_counter()
    with Store(path) as store:
        fill(store.con, JOB, args.samples, args.words)
        fill(store.con, OTHER, args.other_samples, args.words)
        start_backfill = time.perf_counter()
        with transaction(store.con):  # what migration m011 does for a database that has jobs
            summaries.rebuild_all(store.con)
        backfill = time.perf_counter() - start_backfill
    with Store(path) as store:  # reopened: the timings read from the file, not a warm writer
        con = store.con
        counts = {t: con.execute(f"SELECT count(*) FROM {t} WHERE job = ?", [JOB]).fetchone()[0]
                  for t in ("samples", "reviews", "verdicts", "drops")}
        print(f"built in {time.perf_counter() - start:.0f} s, {path.stat().st_size / 2**30:.2f} GiB: {counts}")
        print(f"summaries back-filled (migration m011's work) in {backfill:.2f} s")
        stats.job_stats(con, OTHER)  # warm-up: catalog, first reads
        stats.job_stats(con, OTHER, exact=True)
        r = args.repeats
        t_funnel, m_funnel = measure(lambda: stats.funnel(con, JOB), r)
        print(f"funnel alone (floor): {t_funnel:.3f} s, peak {m_funnel:.1f} GB")
        assert summary_stats.summarized_stats(con, JOB) is not None, "the summary path was not taken"
        t_stats, m_stats = measure(lambda: stats.job_stats(con, JOB), r)
        print(f"job_stats (summaries, `factory stats`): {t_stats:.3f} s, peak {m_stats:.1f} GB; "
              f"ratio job_stats / funnel: {t_stats / t_funnel:.2f}x")
        t_exact, m_exact = measure(lambda: stats.job_stats(con, JOB, exact=True), r)
        print(f"job_stats exact (`factory stats --exact`): {t_exact:.2f} s, peak {m_exact:.1f} GB; "
              f"ratio exact / funnel: {t_exact / t_funnel:.1f}x; ratio exact / summaries: {t_exact / t_stats:.1f}x")
        same = stats.job_stats(con, JOB) == stats.job_stats(con, JOB, exact=True)
        print(f"same stats from summaries and rows: {same}")
        assert same, "the summaries disagree with the rows"
        parts = {
            "funnel": lambda: stats.funnel(con, JOB),
            "score_distributions": lambda: stats.score_distributions(con, JOB),
            "reviewer_agreement": lambda: stats.reviewer_agreement(con, JOB),
            "krippendorff_alpha (SQL)": lambda: cs.krippendorff_alpha(con, JOB),
            "tokens_per_role": lambda: stats.tokens_per_role(con, JOB),
            "verification": lambda: stats.verification(con, JOB),
            "acceptance_by template + model": lambda: (cs.acceptance_by(con, JOB, "template"),
                                                       cs.acceptance_by(con, JOB, "model")),
            "duplicate_rates + contamination": lambda: (cs.duplicate_rates(con, JOB), cs.contamination(con, JOB)),
            "accepted_view_rows": lambda: con.execute("SELECT count(*) FROM accepted WHERE job = ?", [JOB]).fetchone(),
            "diversity (SQL, 20k subset)": lambda: cs.diversity(con, JOB),
        }
        print(f"profile at {args.samples:,} samples (best of {r}, peak resident memory during the part):")
        for name, fn in parts.items():
            seconds, peak = measure(fn, r)
            print(f"  {name:<38}{seconds:>8.3f} s {peak:>6.1f} GB")
        import krippendorff
        import numpy as np

        rows = con.execute("SELECT sample_id, reviewer_index, overall FROM reviews WHERE job = ?", [OTHER]).fetchall()
        units = {sid: i for i, sid in enumerate(sorted({row[0] for row in rows}))}
        data = np.full((3, len(units)), np.nan)
        for sid, coder, score in rows:
            data[coder, units[sid]] = score
        start = time.perf_counter()
        reference = krippendorff.alpha(reliability_data=data, level_of_measurement="interval")
        print(f"alpha on the {args.other_samples:,}-sample job: SQL {cs.krippendorff_alpha(con, OTHER)}, krippendorff package "
              f"{reference:.4f} ({time.perf_counter() - start:.1f} s)")
    write_overhead(path, args.batch_seeds, args.batches)


def write_overhead(path: Path, seeds: int, batches: int) -> None:
    """write_batch with its summary (add_batch) against without, on batches of `seeds` seeds
    copied from the other job's rows into a new job of the same store (best of 3 passes)."""
    from stores import store as store_module

    with Store(path) as store:
        con = store.con
        batch_rows = []
        for b in range(batches):
            lo, hi = b * seeds, (b + 1) * seeds
            rows = {}
            for table in TABLES_WRITTEN_PER_BATCH:
                has_index = "seed_index" in [c[0] for c in con.execute(f"DESCRIBE {table}").fetchall()]
                where = (f"seed_index >= {lo} AND seed_index < {hi}" if has_index else
                         f"sample_id IN (SELECT sample_id FROM samples WHERE job = '{OTHER}' AND seed_index >= {lo} "
                         f"AND seed_index < {hi})")
                rows[table] = con.execute(f"SELECT * FROM {table} WHERE job = '{OTHER}' AND {where}").df() \
                    .astype(object).where(lambda f: f.notna(), None).to_dict("records")
            batch_rows.append((list(range(lo, hi)), rows))
        times = {}
        for label, hook in (("without", lambda *a: None), ("with", summaries.add_batch)):
            best = float("inf")
            for attempt in range(3):
                job = f"write-{label}-{attempt}"
                con.execute("INSERT INTO jobs (fingerprint, name, recipe, spec, decision_rule, num_samples) "
                            "VALUES (?, ?, 'tinystories', '{}', '{}', ?)", [job, job, seeds * batches])
                store_module.add_batch = hook
                start = time.perf_counter()
                for b, (indices, rows) in enumerate(batch_rows):
                    batch = BatchRows(f"b{b}", job, indices)
                    for table, table_rows in rows.items():
                        batch.rows[table] = [_renamed(row, OTHER, job) for row in table_rows]
                    store.write_batch(batch)
                best = min(best, time.perf_counter() - start)
            times[label] = best
        store_module.add_batch = summaries.add_batch
    print(f"write_batch, {batches} batches of {seeds} seeds: without summaries {times['without']:.3f} s, "
          f"with {times['with']:.3f} s; ratio write with / without: {times['with'] / times['without']:.2f}x")


def _renamed(row: dict, old: str, new: str) -> dict:
    return {k: (v.replace(old, new) if isinstance(v, str) and k != "text" else v) for k, v in row.items()}


if __name__ == "__main__":
    main()
