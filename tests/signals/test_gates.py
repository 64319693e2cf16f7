"""Rule gates before review: a truncated generation (finish_reason length) is rejected with
stage/reason `truncated` unless the recipe or job says keep; TinyStories requires its three
seed words (on by default) and rejects loops (repeated 5-gram share)."""
from __future__ import annotations

import json


import factory
from support import fake_job, query, run_job_yaml
from factory import api
from factory.recipes.tinystories import TinyStories, rule_checks


def truncating_job(**decision) -> dict:
    job = fake_job(decision=decision) if decision else fake_job()
    job["roles"]["generator"]["model"] = "fake-truncated"
    return job


def test_truncated_outputs_are_rejected_with_the_reason(tmp_path):
    db = run_job_yaml(tmp_path, truncating_job()).db
    in_play = {r[0] for r in query(db, "SELECT sample_id FROM samples WHERE duplicate_of IS NULL")}
    verdicts = dict(query(db, "SELECT sample_id, stage || ': ' || reason FROM verdicts"))
    assert in_play and all(verdicts[s].startswith("truncated: truncated: the generator stopped at max_tokens")
                           for s in in_play)
    assert query(db, "SELECT count(*) FROM reviews")[0][0] == 0  # no review paid for a cut-off text
    signals = query(db, "SELECT sample_id, details->>'policy' FROM signals WHERE signal = 'truncated'")
    assert {s for s, _ in signals} == in_play and {p for _, p in signals} == {"reject"}
    story = api.explain(next(iter(in_play)), db)
    assert story["gates"][0]["gate"] == "truncated" and story["gates"][0]["result"] == "reject"
    assert story["verdict"]["stage"] == "truncated"


def test_keep_lets_truncated_outputs_go_on_to_review(tmp_path):
    db = run_job_yaml(tmp_path, truncating_job(truncated="keep")).db
    assert query(db, "SELECT count(*) FROM verdicts WHERE stage = 'truncated'")[0][0] == 0
    assert query(db, "SELECT count(*) FROM reviews")[0][0] > 0
    kept = query(db, "SELECT sample_id FROM signals WHERE signal = 'truncated' AND details->>'policy' = 'keep'")
    assert kept
    gate = api.explain(kept[0][0], db)["gates"][0]
    assert gate["gate"] == "truncated" and gate["result"] == "keep"


def test_complete_outputs_pass_the_truncation_gate(tmp_path):
    db = run_job_yaml(tmp_path, fake_job()).db
    assert query(db, "SELECT count(*) FROM verdicts WHERE stage = 'truncated'")[0][0] == 0
    assert query(db, "SELECT count(*) FROM signals WHERE signal = 'truncated'")[0][0] == 0


SEED = {"verb": "jump", "noun": "ball", "adjective": "red", "features": []}
STORY = "Tom saw a red ball. He wanted to jump over it. He jumped and laughed. Then he went home to eat."


def test_seed_word_gate(fake_spec):
    recipe = TinyStories(fake_spec())
    assert recipe.spec.decision.require_seed_words  # on by default for tinystories
    assert recipe.rule_reject(rule_checks(SEED, STORY)) is None
    missing = rule_checks(SEED, STORY.replace("red ", "big ").replace("jump over", "go over").replace("jumped", "ran"))
    assert recipe.rule_reject(missing) == ("seed_words", "missing seed word(s): verb, adjective")
    off = TinyStories(fake_spec(decision={"require_seed_words": False}))
    assert off.rule_reject(missing) is None


def test_repetition_gate_and_signal(fake_spec):
    recipe = TinyStories(fake_spec())
    # each sentence differs in its first word, so the repeated-sentence and loop gates (issue
    # 21) pass it and the 5-gram share is what rejects it
    loop = " ".join(f"{w} Tom saw a red ball and wanted to jump." for w in ("Then", "So", "And", "Later", "Soon", "Now"))
    checks = rule_checks(SEED, loop)
    stage, reason = recipe.rule_reject(checks)
    assert stage == "repetition" and reason.endswith("of 5-grams repeat (> 30%)")
    assert checks["repeated_5gram_ratio"] > 0.3 and rule_checks(SEED, STORY)["repeated_5gram_ratio"] == 0
    assert TinyStories.rule_signals(checks)[-1] == 1.0 - checks["repeated_5gram_ratio"]


def test_seed_word_gate_in_a_run(tmp_path):
    db = run_job_yaml(tmp_path, fake_job()).db
    rows = query(db, """SELECT s.rule_checks, v.stage FROM samples s JOIN verdicts v USING (sample_id)
                        WHERE s.duplicate_of IS NULL""")
    complete = [all(json.loads(c)[k] for k in ("has_verb", "has_noun", "has_adjective")) for c, _ in rows]
    assert [stage == "seed_words" for _, stage in rows] == [not c for c in complete]
    assert any(complete) and not all(complete), rows  # the fake's shared "play" story lacks the seed words


def test_each_storys_seed_word_share_is_a_signal_in_stats(tmp_path):
    db = run_job_yaml(tmp_path, fake_job(decision={"min_seed_words": 3})).db
    shares = query(db, "SELECT value FROM signals WHERE signal = 'seed_words'")
    generated = query(db, "SELECT count(*) FROM samples WHERE duplicate_of IS NULL")[0][0]
    assert len(shares) == generated and {v for (v,) in shares} <= {0.0, 0.3333, 0.6667, 1.0}
    stats = factory.stats(db)["signals"]["seed_words"]
    decided = query(db, "SELECT count(*) FROM verdicts WHERE stage = 'seed_words'")[0][0]
    assert stats["samples"] == generated and stats["verdicts_decided"] == decided > 0
    assert stats == factory.stats(db, exact=True)["signals"]["seed_words"]  # summaries and rows agree


def test_a_json_output_cut_off_at_max_tokens_is_a_drop_saying_so(tmp_path):
    """issue 24 item 4: unterminated JSON stopped at max_tokens is "cut off at max_tokens
    (N tokens)", not "invalid JSON: Unterminated string ..."."""
    job = fake_job(num_samples=4, reviewers=2)
    job["roles"]["reviewer"]["model"] = "fake-cut-json"
    db = run_job_yaml(tmp_path, job).db
    drops = query(db, "SELECT reason, completion_tokens FROM drops WHERE role = 'reviewer'")
    assert drops and all(reason == f"cut off at max_tokens ({tokens} tokens)" for reason, tokens in drops)
    assert not any("invalid JSON" in reason for reason, _ in drops)
