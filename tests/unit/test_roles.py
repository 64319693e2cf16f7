import json

from roles import Adjudicator, Drop, Generator, ProblemReviewer, StoryReviewer, Story, TextbookReviewer


def test_generator_keeps_a_story_and_drops_fragments():
    g = Generator("tinystories/generator@1")
    story = " ".join(["word"] * 40)
    assert g.parse({}, "  " + story + "\n") == Story(story)
    assert g.parse({}, "") == Drop("empty output", "")
    dropped = g.parse({}, "The end.")
    assert isinstance(dropped, Drop) and dropped.reason.startswith("too short") and dropped.raw == "The end."


def test_generator_prompt_carries_seed_words_and_features():
    g = Generator("tinystories/generator@1")
    messages = g.messages({"verb": "jump", "noun": "ball", "adjective": "red", "features": ["Dialogue", "Twist"]})
    user = messages[-1]["content"]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert '"jump"' in user and '"ball"' in user and '"red"' in user
    assert "dialogue" in user and "plot twist" in user and "bad ending" not in user


def test_reviewer_parses_valid_json_and_drops_the_rest():
    r = StoryReviewer("tinystories/reviewer@1")
    ok = {"grammar": 7, "creativity": 5, "consistency": 6, "plot": 4, "age_group": "3-5", "critique": "ok"}
    review = r.parse({}, json.dumps(ok))
    assert review.overall == 5.5 and review.label == "3-5"
    assert review.scores == {"grammar": 7, "creativity": 5, "consistency": 6, "plot": 4}
    # a raw newline inside the critique string is still readable JSON
    assert r.parse({}, json.dumps(ok).replace('"ok"', '"line one\nline two"').replace("\\n", "\n")).critique
    prose = r.parse({}, "I think it is a good story")
    assert isinstance(prose, Drop) and prose.reason.startswith("invalid JSON") and prose.raw.startswith("I think")
    out_of_range = r.parse({}, json.dumps({**ok, "plot": 11}))
    assert isinstance(out_of_range, Drop) and "plot" in out_of_range.reason


def test_reviewer_schema_constrains_every_axis():
    schema = StoryReviewer.json_schema
    assert set(schema["required"]) == {"grammar", "creativity", "consistency", "plot", "age_group", "critique"}
    assert schema["properties"]["plot"]["enum"] == list(range(1, 11))


def test_adjudicator_parses_a_verdict():
    a = Adjudicator("tinystories/adjudicator@1")
    v = a.parse({}, '{"decision": "reject", "reason": "no plot"}')
    assert v.decision == "reject" and v.reason == "no plot"
    assert isinstance(a.parse({}, '{"decision": "maybe", "reason": ""}'), Drop)
    msgs = a.messages({"story": "S", "reviews": [{"scores": {"grammar": 1, "creativity": 2, "consistency": 3,
                                                              "plot": 4}, "critique": "meh"}]})
    assert "grammar 1" in msgs[-1]["content"] and "meh" in msgs[-1]["content"]


def test_textbook_review_is_additive_and_zero_when_facts_are_wrong():
    r = TextbookReviewer("textbook/reviewer@1")
    points = {"relevant_information": True, "coherent_teaching": True, "key_concepts_for_audience": False,
              "clear_with_examples_or_exercises": True, "outstanding": False}
    good = r.parse({}, json.dumps({**points, "facts_wrong": False, "critique": "ok"}))
    assert good.overall == 3.0 and good.scores["coherent_teaching"] == 1
    wrong = r.parse({}, json.dumps({**points, "facts_wrong": True, "critique": "wrong date"}))
    assert wrong.overall == 0.0 and wrong.scores["facts_wrong"] == 1


def test_problem_reviewer_scores_clarity_and_solvability():
    r = ProblemReviewer("math/reviewer@1")
    review = r.parse({}, '{"clarity": 8, "solvability": 6, "critique": "fine"}')
    assert review.overall == 7.0 and review.scores == {"clarity": 8, "solvability": 6}
