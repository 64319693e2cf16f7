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
