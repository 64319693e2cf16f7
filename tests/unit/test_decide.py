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
