"""Cross-job and corpus dedup (curation.against_jobs / against_corpus) on the fake backend:
job B re-making job A's texts gets them removed against A; corpus files in JSONL and Parquet;
bad input (a missing field, an unknown job) exits 2 and changes nothing; a pass that fails
while writing leaves the previous state; stats, explain and the accepted view follow."""
import hashlib
import json

import duckdb
import pytest
import yaml

import factory
from support import dump, fake_job, query
from factory.cli import main
from factory.curation import against
from factory.curation.run import curate
from factory.pipeline import run_job
from factory.spec import CurationSpec, parse_job
from stores import Store

NO_SEMANTIC = {"semantic": False, "semantic_contamination": False}


@pytest.fixture(scope="module")
def two_jobs(tmp_path_factory):
    """Jobs A and B in one database: B differs only in its reviewer count (another
    fingerprint), so the fake generator writes B the same texts A got."""
    tmp = tmp_path_factory.mktemp("against")
    db = tmp / "two.duckdb"
    a = parse_job(fake_job(name="job-a", num_samples=16, db=str(db)))
    b = parse_job(fake_job(name="job-b", num_samples=16, reviewers=2, db=str(db)))
    assert a.fingerprint != b.fingerprint
    run_job(a, db=db)
    run_job(b, db=db)
    return db, a.fingerprint, b.fingerprint


@pytest.fixture
def store(two_jobs, tmp_path):
    db, a, b = two_jobs
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(db.read_bytes())
    return copy, a, b


def job_file(tmp_path, db, name: str, reviewers: int, curation: dict):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(fake_job(name=name, num_samples=16, reviewers=reviewers, db=str(db),
                                            curation=curation)))
    return path


def candidates(db, job) -> list[tuple[str, str, str]]:
    return query(db, f"SELECT sample_id, text, content_hash FROM samples WHERE job = '{job}' AND duplicate_of IS NULL "
                     "ORDER BY seed_index")


def test_job_b_remaking_job_a_texts_is_removed_against_a(store, tmp_path, capsys):
    db, a, b = store
    a_accepted = dict(query(db, f"SELECT content_hash, sample_id FROM accepted WHERE job = '{a}'"))
    b_accepted_before = {r[0] for r in query(db, f"SELECT sample_id FROM accepted WHERE job = '{b}'")}
    a_before = {t: rows for t, rows in dump(db).items()}
    expected = {sid: a_accepted[h] for sid, _, h in candidates(db, b) if h in a_accepted}
    assert len(expected) >= 2  # the fake writes B the texts A accepted: the test has something to remove

    assert main(["curate", str(job_file(tmp_path, db, "job-b", 2, {**NO_SEMANTIC, "against_jobs": ["job-a"]})),
                 "--db", str(db)]) == 0
    out = capsys.readouterr().err  # the pass's report goes to stderr
    assert f"against job job-a ({a}): {len(a_accepted)} texts" in out and f"outside_removed {len(expected)}" in out

    rows = query(db, "SELECT sample_id, job, method, kind, against, against_name, other_sample_id, other_row, "
                     "similarity FROM outside_duplicates ORDER BY sample_id")
    assert {r[0]: r[6] for r in rows} == expected
    assert {(r[1], r[2], r[3], r[4], r[5], r[7], r[8]) for r in rows} == {(b, "exact", "job", a, "job-a", None, 1.0)}
    # B's accepted view loses exactly those; A's rows are untouched (A was never curated here).
    b_accepted = {r[0] for r in query(db, f"SELECT sample_id FROM accepted WHERE job = '{b}'")}
    assert b_accepted == b_accepted_before - set(expected)
    after = dump(db)
    for table in ("samples", "verdicts", "reviews"):
        assert [r for r in after[table] if a in r] == [r for r in a_before[table] if a in r]
    assert query(db, f"SELECT count(*) FROM quality_scores WHERE job = '{a}'") == [(0,)]

    stats = factory.stats(db, "job-b")
    assert stats["outside_duplicates"] == {"samples": len(expected), "by_source": {"job job-a (exact)": len(expected)}}
    assert stats["accepted_view_rows"] == len(b_accepted)
    assert stats["curation_summary"]["outside_exact"] == len(expected)
    story = factory.explain(next(iter(expected)), db)
    assert story["outside_duplicate"]["other_sample_id"] == expected[next(iter(expected))]
    assert story["in_accepted_view"] is False
    assert main(["explain", next(iter(expected)), "--db", str(db)]) == 0
    assert "exact duplicate (similarity 1.0) of job job-a" in capsys.readouterr().out

    # A curated against B now: B's copies are gone from B's accepted view, so A keeps every text
    # it accepted (two jobs deduped against each other never both lose one); what A loses are
    # its rejected copies of texts only B accepted.
    assert main(["curate", str(job_file(tmp_path, db, "job-a", 3, {**NO_SEMANTIC, "against_jobs": ["job-b"]})),
                 "--db", str(db)]) == 0
    assert dict(query(db, f"SELECT content_hash, sample_id FROM accepted WHERE job = '{a}'")) == a_accepted
    a_rows = query(db, f"SELECT other_sample_id FROM outside_duplicates WHERE job = '{a}'")
    assert {r[0] for r in a_rows} <= b_accepted


def test_corpus_jsonl_and_parquet(store, tmp_path):
    db, a, _ = store
    texts = [(sid, text) for sid, text, _ in candidates(db, a)]
    near_id, near_text = texts[1]
    exact_id, exact_text = texts[3]
    words = near_text.split()
    edited = " ".join(words[:-4] + ["indeed"] + words[-3:])  # one word of ~45 changed: Jaccard ~0.87
    jsonl = tmp_path / "old.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in [{"body": "A cat sat on a mat all day long."}, {"other": 1},
                                                       {"body": edited}]) + "\n")
    parquet = tmp_path / "old.parquet"
    duckdb.sql(f"COPY (SELECT * FROM (VALUES ('an unrelated row about ships and the sea'), ({exact_text!r})) t(text)) "
               f"TO '{parquet}' (FORMAT parquet)")
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (jsonl, parquet)}
    config = CurationSpec(**NO_SEMANTIC, against_corpus=[{"path": str(jsonl), "field": "body", "name": "old"},
                                                         {"path": str(parquet)}])
    with Store(db) as s:
        summary = curate(s.con, a, "tinystories", config)
        rows = s.con.execute("SELECT sample_id, method, kind, against, against_name, other_sample_id, other_row "
                             "FROM outside_duplicates ORDER BY other_row").fetchall()
    assert sorted(rows) == sorted([(near_id, "near", "corpus", str(jsonl), "old", None, 2),
                                   (exact_id, "exact", "corpus", str(parquet), "old.parquet", None, 1)])
    assert summary["outside_near"] == 1 and summary["outside_exact"] == 1 and summary["outside_removed"] == 2
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (jsonl, parquet)} == before
    assert query(db, f"SELECT count(*) FROM accepted WHERE sample_id IN ('{near_id}', '{exact_id}')") == [(0,)]


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_corpus_without_the_field_exits_2_and_changes_nothing(store, tmp_path, capsys, kind):
    db, _, b = store
    path = tmp_path / f"corpus.{kind}"
    if kind == "jsonl":
        path.write_text(json.dumps({"story": "x", "id": 1}) + "\n")
    else:
        duckdb.sql(f"COPY (SELECT 'x' AS story, 1 AS id) TO '{path}' (FORMAT parquet)")
    before = dump(db)
    capsys.readouterr()
    job = job_file(tmp_path, db, "job-b", 2, {**NO_SEMANTIC, "against_corpus": [{"path": str(path)}]})
    assert main(["curate", str(job), "--db", str(db)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: curation.against_corpus: corpus {path} has no field 'text'; its fields: id, story"]
    assert dump(db) == before


def test_unknown_job_exits_2_listing_the_jobs(store, tmp_path, capsys):
    db, a, b = store
    before = dump(db)
    capsys.readouterr()
    job = job_file(tmp_path, db, "job-b", 2, {**NO_SEMANTIC, "against_jobs": ["job-z"]})
    assert main(["curate", str(job), "--db", str(db)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: curation.against_jobs: no job 'job-z' in this database; its jobs: "
                   f"job-a ({a}), job-b ({b})"]
    assert dump(db) == before


def test_names_and_fingerprints(store):
    db, a, b = store
    with Store(db) as s:
        assert against.resolve_jobs(s.con, b, ["job-a", a[:6], "job-b"]) == [(a, "job-a")]  # job-b: only itself
        with pytest.raises(against.AgainstError, match="is the job being curated"):
            against.resolve_jobs(s.con, b, [b])
        summary = curate(s.con, b, "tinystories", CurationSpec(**NO_SEMANTIC, against_jobs=["job-b"]))
    assert summary["against"] == "nothing" and summary["outside_removed"] == 0


def test_a_pass_failing_while_writing_keeps_the_previous_state(store, tmp_path, monkeypatch):
    db, a, b = store
    with Store(db) as s:
        curate(s.con, b, "tinystories", CurationSpec(**NO_SEMANTIC, against_jobs=["job-a"]))
    first = dump(db)
    assert first["outside_duplicates"]

    import stores.curation as writes

    insert = writes._insert_frame

    def dies_at_outside_rows(con, table, rows):
        if table == "outside_duplicates":
            raise RuntimeError("killed")  # after the DELETEs and the other inserts of the same pass
        insert(con, table, rows)

    monkeypatch.setattr(writes, "_insert_frame", dies_at_outside_rows)
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"text": candidates(db, b)[0][1]}) + "\n")
    with Store(db) as s, pytest.raises(RuntimeError, match="killed"):
        curate(s.con, b, "tinystories", CurationSpec(**NO_SEMANTIC, against_corpus=[{"path": str(corpus)}]))
    assert dump(db) == first
