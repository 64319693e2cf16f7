"""Per-job stats summaries (stores/summaries.py) give the same stats as the rows
(`factory stats --exact`): on fake-backend jobs written in several batches and resumed, with
drops and exact duplicates, a math job (verifications, solution attempts), after a curation
pass and batches written after it; a summary that no longer matches its rows is not used;
an old database is read from rows, then back-filled by the migration."""
from __future__ import annotations

import json

import duckdb
import pytest
from support import fake_job
from unit.test_old_database import old_database

from factory.api import curate
from factory.cli import main
from factory.pipeline import run_job
from factory.spec import parse_job
from stores import Store, curation_stats, summaries, summary_stats
from stores.stats import job_stats
from stores.summary_stats import summarized_stats


def both(con, job=None) -> tuple[dict, dict]:
    """(stats from the summary, stats from the rows); the summary must have been used."""
    fingerprint = job_stats(con, job, exact=True)["job"]
    assert summarized_stats(con, fingerprint) is not None, "the job has no usable summary"
    return job_stats(con, job), job_stats(con, job, exact=True)


def read_only(db):
    return duckdb.connect(str(db), read_only=True)


def test_a_resumed_job_with_drops_and_duplicates_summarizes_as_its_rows(tmp_path):
    db = tmp_path / "s.duckdb"
    spec = parse_job(fake_job(num_samples=20))
    run_job(spec, db=db, limit=6)  # 2 batches (batch_size 4), then resumed: 5 batches in all
    with read_only(db) as con:
        summary, exact = both(con)
        assert summary == exact and exact["funnel"]["seeds"] == 6
    run_job(spec, db=db)
    with read_only(db) as con:
        summary, exact = both(con)
    assert summary == exact
    f = exact["funnel"]
    # the case this test is for: drops without a sample, exact duplicates, several reviews each
    assert f["seeds"] == 20 and f["exact_duplicates"] > 0 and f["drop_reasons"] and f["reviewed"] > 0
    assert exact["reviewer_agreement"]["samples_with_2plus_reviews"] > 0 and exact["signals"]
    assert exact["reviewer_alpha"] is not None and exact["diversity"]["distinct_3gram_ratio"] is not None


def test_a_math_job_summarizes_its_verifications_and_attempts(tmp_path):
    db = tmp_path / "m.duckdb"
    roles = ("problem_writer", "generator", "long_solver", "short_solver", "reviewer", "adjudicator")
    spec = parse_job(fake_job(name="m", recipe="math", num_samples=8, options={}, db=str(db),
                              roles={r: {"backend": "fake", "model": "fake"} for r in roles}))
    run_job(spec, db=db)
    with read_only(db) as con:
        summary, exact = both(con)
    assert summary == exact and exact["verification"]["checked"] > 0 and exact["verification"]["attempts"]


@pytest.mark.model  # all-MiniLM-L6-v2 (sentence-transformers) embeds the texts
def test_after_a_curation_pass_and_batches_written_after_it(tmp_path):
    db = tmp_path / "c.duckdb"
    bench = tmp_path / "bench.jsonl"
    job = fake_job(num_samples=24, db=str(db), decision={"accept_mean": 0, "max_spread": 10, "reject_mean": 0})
    spec = parse_job(job)
    run_job(spec, db=db, limit=16)
    with read_only(db) as con:  # its last 8 words ("... story number N."): one flag
        text = con.execute("SELECT s.text FROM samples s JOIN verdicts v USING (sample_id) WHERE v.decision = "
                           "'accept' AND s.duplicate_of IS NULL ORDER BY s.seed_index LIMIT 1").fetchone()[0]
    bench.write_text(json.dumps({"question": " ".join(text.split()[-8:])}) + "\n")
    curate(parse_job({**job, "curation": {"decontaminate": [{"path": str(bench), "name": "b"}],
                                           "semantic_contamination": False, "semantic_threshold": 0.999}}), db=db)
    with read_only(db) as con:
        summary, exact = both(con)
        stamp = summaries.removal_stamp(con)
        stored = con.execute("SELECT key FROM stats_summaries WHERE name = 'removed_accepted'").fetchall()
    assert summary == exact and exact["curated"] and exact["contamination"]["samples"] >= 1
    assert exact["diversity"]["mean_pairwise_embedding_distance"] is not None  # the pass embedded the samples
    assert exact["accepted_view_rows"] < exact["funnel"]["accepted"]
    assert stored == [(stamp,)]  # the pass refreshed the curation state: nothing computed from rows on reading
    run_job(spec, db=db)  # 8 more seeds, not curated
    with read_only(db) as con:
        summary, exact = both(con)
    assert summary == exact and exact["funnel"]["seeds"] == 24


def test_a_job_deduplicated_against_another_job(tmp_path):
    """Cross-job dedup (outside_duplicates, m010) takes samples out of the accepted view: the
    summary's accepted view and diversity subset leave them out too."""
    db = tmp_path / "x.duckdb"
    loose = {"accept_mean": 0, "max_spread": 10, "reject_mean": 0}
    run_job(parse_job(fake_job(name="first", num_samples=8, decision=loose)), db=db)
    second = fake_job(name="second", num_samples=8, decision=loose, db=str(db), reviewers=2)
    run_job(parse_job(second), db=db)
    curate(parse_job({**second, "curation": {"against_jobs": ["first"], "semantic": False,
                                             "semantic_contamination": False}}), db=db)
    with read_only(db) as con:
        summary, exact = both(con, "second")
        assert summary == exact and exact["outside_duplicates"]["samples"] > 0
        assert both(con, "first")[0] == both(con, "first")[1]


def test_rows_written_outside_write_batch_are_read_from_rows(tmp_path):
    db = tmp_path / "o.duckdb"
    spec = parse_job(fake_job(num_samples=4))
    run_job(spec, db=db)
    with Store(db) as store:
        store.con.execute("INSERT INTO seeds VALUES ('extra', ?, 99, '{}')", [spec.fingerprint])
        assert summarized_stats(store.con, spec.fingerprint) is None  # its seed count disagrees
        assert job_stats(store.con)["funnel"]["seeds"] == 5 == job_stats(store.con, exact=True)["funnel"]["seeds"]


def test_rows_deleted_outside_write_batch_are_rebuilt_at_the_next_batch(tmp_path):
    """tests/fuzz deletes a job's rows and reruns it: the next batch sees counts that do not
    follow from the summary and rebuilds it (the write never fails on a stale summary)."""
    db = tmp_path / "r.duckdb"
    spec = parse_job(fake_job(num_samples=8))
    run_job(spec, db=db)
    with Store(db) as store:
        for table in ("seeds", "samples", "reviews", "verdicts", "drops", "signals", "done_seeds"):
            store.con.execute(f"DELETE FROM {table}")
    run_job(spec, db=db)
    with read_only(db) as con:
        summary, exact = both(con)
    assert summary == exact and exact["funnel"]["seeds"] == 8


def test_a_curation_table_written_outside_a_pass_is_counted_on_reading(tmp_path):
    """The stored count of accepted samples curation removed belongs to the last pass's
    state; a dedup row written by hand changes the state, and the count is made from rows."""
    db = tmp_path / "h.duckdb"
    spec = parse_job(fake_job(num_samples=8))
    run_job(spec, db=db)
    with Store(db) as store:
        con = store.con
        sample = con.execute("SELECT s.sample_id FROM samples s JOIN verdicts v USING (sample_id) "
                             "WHERE v.decision = 'accept' AND s.duplicate_of IS NULL LIMIT 1").fetchone()[0]
        before = job_stats(con)["accepted_view_rows"]
        con.execute("INSERT INTO dedup_clusters VALUES (?, 'near', 'c', ?, false, 0.9)", [spec.fingerprint, sample])
        summary, exact = both(con)
    assert summary == exact and exact["accepted_view_rows"] == before - 1


def test_the_diversity_subset_keeps_the_smallest_hashes(tmp_path, monkeypatch):
    """With a 3-sample diversity subset and 6 kept: batches trim the kept set, the subset
    matches the rows' (same 3-gram ratio), and when curation leaves fewer than 3 of the kept
    ones the ratio comes from the rows."""
    monkeypatch.setattr(summary_stats, "DIVERSITY_SUBSET", 3)
    monkeypatch.setattr(summaries, "SUBSET_KEPT", 6)
    monkeypatch.setattr(curation_stats, "DISTINCT_3GRAMS_SQL", curation_stats.DISTINCT_3GRAMS_SQL.replace(
        f"LIMIT {curation_stats.DIVERSITY_SUBSET}", "LIMIT 3"))
    monkeypatch.setattr(summary_stats, "DISTINCT_3GRAMS_SQL", curation_stats.DISTINCT_3GRAMS_SQL)
    db = tmp_path / "d.duckdb"
    spec = parse_job(fake_job(num_samples=40, decision={"accept_mean": 0, "max_spread": 10, "reject_mean": 0}))
    run_job(spec, db=db)
    with Store(db) as store:
        con = store.con
        summary, exact = both(con)
        assert summary == exact
        accepted = exact["funnel"]["accepted"] - exact["funnel"]["exact_duplicates"]
        kept = con.execute("SELECT sample_id FROM stats_subsets ORDER BY h").fetchall()
        assert accepted > 6 and len(kept) == 6  # trimmed
        # curation removes 4 of the 6 kept: 2 left < 3, so the ratio is computed from the rows
        for (sample_id,) in kept[:4]:
            con.execute("INSERT INTO contamination (job, sample_id, benchmark, benchmark_row, ngram_size, ngram) "
                        "VALUES (?, ?, 'b', 0, 8, 'x')", [spec.fingerprint, sample_id])
        summary, exact = both(con)
        assert summary == exact


def test_a_database_from_before_the_summaries_is_read_from_rows_then_back_filled(tmp_path):
    """A database at m010 (the tables m011 makes dropped, its row removed): read-only, the
    stats come from the rows; opened by a writer, m011 back-fills the job's summary."""
    db = tmp_path / "b.duckdb"
    run_job(parse_job(fake_job(num_samples=12)), db=db)
    with read_only(db) as con:
        current = job_stats(con, exact=True)
    with duckdb.connect(str(db)) as con:
        con.execute("DROP TABLE stats_summaries")
        con.execute("DROP TABLE stats_subsets")
        con.execute("DELETE FROM schema_migrations WHERE name = 'm011_stats_summaries'")
    with read_only(db) as con:
        assert not summaries.has_tables(con)
        assert job_stats(con) == current
    with Store(db) as store:
        summary, exact = both(store.con)
    assert summary == exact == current


def test_an_old_database_is_back_filled_by_the_migrations_and_continues(tmp_path):
    spec = parse_job(fake_job(num_samples=8))
    old, legacy = old_database(tmp_path, spec)  # m001-m004 only (tests/unit/test_old_database.py)
    with Store(old) as store:  # m005 .. m011: the back-fill
        summary, exact = both(store.con)
    assert summary == exact and exact["job"] == legacy
    run_job(parse_job(fake_job(num_samples=12)), db=old)  # continues under the old fingerprint
    with read_only(old) as con:
        summary, exact = both(con)
    assert summary == exact and exact["funnel"]["seeds"] == 12


def test_factory_stats_exact_prints_the_same_json(tmp_path, capsys):
    db = tmp_path / "x.duckdb"
    run_job(parse_job(fake_job(num_samples=8)), db=db)
    assert main(["stats", "--db", str(db), "--json"]) == 0
    summary = capsys.readouterr().out
    assert main(["stats", "--db", str(db), "--json", "--exact"]) == 0
    assert capsys.readouterr().out == summary and json.loads(summary)["funnel"]["seeds"] == 8
