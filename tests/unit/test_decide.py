from factory.decide import decide

RULE = dict(accept_mean=7, max_spread=1.5, reject_mean=5)


def test_accept_when_high_and_agreeing():
    d = decide([7.5, 8.0, 7.0], **RULE)
    assert d.outcome == "accept" and d.mean == 7.5 and d.spread == 1.0


def test_reject_when_low():
    assert decide([4.0, 4.5, 3.0], **RULE).outcome == "reject"


def test_adjudicate_when_high_but_disagreeing_or_in_between():
    assert decide([9.0, 9.0, 6.0], **RULE).outcome == "adjudicate"
    assert decide([6.0, 6.0, 6.0], **RULE).outcome == "adjudicate"


def test_boundaries_are_inclusive_as_documented():
    assert decide([7.0, 7.0], **RULE).outcome == "accept"
    assert decide([5.0, 5.0], **RULE).outcome == "adjudicate"


def _half_garbage_reviewers(**decision):
    """Two reviewers per sample from a pool of a good and a garbage model: each sample has
    exactly one valid review."""
    from support import fake_job

    pool = [{"backend": "fake", "model": "fake"}, {"backend": "fake", "model": "fake-garbage"}]
    job = fake_job(reviewers=2, decision={"accept_mean": 1.0, "reject_mean": 1.0, **decision})
    job["roles"]["reviewer"]["pool"] = pool
    return job


def test_without_a_quorum_one_valid_review_of_two_decides_as_before(tmp_path):
    from support import query
    from factory.pipeline import run_job
    from factory.spec import parse_job

    db = tmp_path / "q.duckdb"
    run_job(parse_job(_half_garbage_reviewers()), db=db)
    assert query(db, "SELECT DISTINCT decision, stage, n_reviews FROM verdicts WHERE stage = 'reviewers'") == \
        [("accept", "reviewers", 1)]


def test_a_quorum_never_decides_on_fewer_valid_reviews(tmp_path):
    """issue 24 item 3: with reviewers: 2 one review was dropped and the sample accepted on
    the other; decision.min_reviews: 2 drops it (stage 'quorum') with the count."""
    from support import query
    from factory.pipeline import run_job
    from factory.spec import parse_job

    db = tmp_path / "q.duckdb"
    run_job(parse_job(_half_garbage_reviewers(min_reviews=2)), db=db)
    reviewed = query(db, "SELECT DISTINCT decision, stage, n_reviews, reason FROM verdicts "
                         "WHERE stage IN ('reviewers', 'adjudicator', 'quorum')")
    assert reviewed == [("drop", "quorum", 1, "1 valid review of 2, fewer than decision.min_reviews 2: "
                                              "not decided on them")]


def test_min_reviews_is_fingerprinted_only_when_set_and_at_most_reviewers(tmp_path, capsys):
    import yaml
    from support import fake_job
    from factory.cli import main
    from factory.spec import parse_job

    plain, unset = parse_job(fake_job()), parse_job(fake_job(decision={"min_reviews": None}))
    assert "min_reviews" not in plain.canonical()["decision"] and plain.fingerprint == unset.fingerprint
    assert parse_job(fake_job(decision={"min_reviews": 2})).fingerprint != plain.fingerprint
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(fake_job(reviewers=2, decision={"min_reviews": 3})))
    db = tmp_path / "x.duckdb"
    assert main(["run", str(path), "--db", str(db), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "decision.min_reviews: 3 is more than reviewers (2)" in err and len(err.splitlines()) == 1
    assert not db.exists()


def _ran_with_quorum(tmp_path, **decision):
    from support import query
    from factory.pipeline import run_job
    from factory.spec import parse_job

    db = tmp_path / "q.duckdb"
    # max_spread 10: two valid reviews always decide (no adjudication of a restored sample)
    run_job(parse_job(_half_garbage_reviewers(min_reviews=2, max_spread=10.0, **decision)), db=db)
    return db, query


def test_replacement_reviews_restore_the_quorum(tmp_path):
    """Each sample's two reviewers are one good and one garbage model (a seeded order of the
    pool); replacement slots 2 and 3 take the same order again, so two replacements always
    reach a second valid review: every sample is decided on two, none dropped at quorum."""
    from factory.api import stats

    db, query = _ran_with_quorum(tmp_path, replacement_reviews=2)
    reviewed = query(db, "SELECT count(*) FROM verdicts WHERE stage NOT IN ('truncated', 'seed_words', 'vocabulary')"
                         " AND n_reviews > 0")[0][0]
    assert query(db, "SELECT DISTINCT stage, n_reviews FROM verdicts WHERE n_reviews > 0 AND stage <> 'adjudicator'") \
        == [("reviewers", 2)]
    assert query(db, "SELECT count(*), min(value), max(value) FROM signals WHERE signal = 'quorum'") == \
        [(reviewed, 1.0, 1.0)]
    slots = query(db, "SELECT DISTINCT reviewer_index FROM reviews ORDER BY 1")
    assert {s for (s,) in slots} >= {2} and max(s for (s,) in slots) <= 3  # new slots, at most two more
    n, seeds = query(db, "SELECT count(*), count(DISTINCT (sample_id, request_seed)) FROM reviews")[0]
    assert n == seeds  # a replacement is a new request seed, not the dropped request again
    for exact in (False, True):
        q = stats(db, exact=exact)["signals"]["quorum"]
        assert (q["samples"], q["mean"], q["verdicts_decided"]) == (reviewed, 1.0, 0)


def test_below_quorum_after_replacements_goes_to_the_adjudicator(tmp_path):
    """One replacement (slot 2) restores the quorum where the seeded order put the good model
    first; the rest stay at one valid review and the Adjudicator decides them, the reason
    saying so. No sample is decided by the reviewers on fewer than two."""
    from rich.console import Console
    from factory.api import stats
    from factory.render import stats_tables

    db, query = _ran_with_quorum(tmp_path, replacement_reviews=1, below_quorum="adjudicator")
    assert query(db, "SELECT count(*) FROM verdicts WHERE stage = 'reviewers' AND n_reviews < 2") == [(0,)]
    assert query(db, "SELECT count(*) FROM verdicts WHERE stage = 'quorum'") == [(0,)]
    restored, short = query(db, "SELECT count(*) FILTER (value = 1), count(*) FILTER (value = 0) FROM signals "
                                "WHERE signal = 'quorum'")[0]
    adjudicated = query(db, "SELECT n_reviews, reason FROM verdicts WHERE stage = 'adjudicator'")
    assert restored > 0 and short > 0 and len(adjudicated) == short
    assert all(n == 1 and reason.startswith("below quorum: 1 valid review of 3, fewer than decision.min_reviews 2; "
                                            "the adjudicator: ") for n, reason in adjudicated)
    console = Console(width=300, record=True)
    for table in stats_tables(stats(db)):
        console.print(table)
    assert f"{restored + short} / {restored} / 0 / {short}" in console.export_text()


def test_quorum_settings_are_fingerprinted_only_when_set_and_need_min_reviews(tmp_path, capsys):
    import yaml
    from support import fake_job
    from factory.cli import main
    from factory.spec import parse_job

    plain = parse_job(fake_job(decision={"min_reviews": 2}))
    same = parse_job(fake_job(decision={"min_reviews": 2, "replacement_reviews": 0, "below_quorum": "drop"}))
    assert plain.fingerprint == same.fingerprint and "replacement_reviews" not in plain.canonical()["decision"]
    more = parse_job(fake_job(decision={"min_reviews": 2, "replacement_reviews": 1}))
    assert more.fingerprint != plain.fingerprint
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(fake_job(decision={"replacement_reviews": 2})))
    db = tmp_path / "x.duckdb"
    assert main(["run", str(path), "--db", str(db), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "decision.replacement_reviews: acts on samples below decision.min_reviews" in err
    assert len(err.splitlines()) == 1 and not db.exists()
