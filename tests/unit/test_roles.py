import json

from roles import Adjudicator, Drop, Generator, Reviewer, Story


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
    r = Reviewer("tinystories/reviewer@1")
    ok = {"grammar": 7, "creativity": 5, "consistency": 6, "plot": 4, "age_group": "3-5", "critique": "ok"}
    review = r.parse({}, json.dumps(ok))
    assert review.overall == 5.5
    prose = r.parse({}, "I think it is a good story")
    assert isinstance(prose, Drop) and prose.reason.startswith("invalid JSON") and prose.raw.startswith("I think")
    out_of_range = r.parse({}, json.dumps({**ok, "plot": 11}))
    assert isinstance(out_of_range, Drop) and "plot" in out_of_range.reason


def test_reviewer_schema_constrains_every_axis():
    schema = Reviewer.json_schema
    assert set(schema["required"]) == {"grammar", "creativity", "consistency", "plot", "age_group", "critique"}
    assert schema["properties"]["plot"]["enum"] == list(range(1, 11))


def test_adjudicator_parses_a_verdict():
    a = Adjudicator("tinystories/adjudicator@1")
    v = a.parse({}, '{"decision": "reject", "reason": "no plot"}')
    assert v.decision == "reject" and v.reason == "no plot"
    assert isinstance(a.parse({}, '{"decision": "maybe", "reason": ""}'), Drop)
    msgs = a.messages({"story": "S", "reviews": [{"grammar": 1, "creativity": 2, "consistency": 3, "plot": 4,
                                                   "critique": "meh"}]})
    assert "grammar 1" in msgs[-1]["content"] and "meh" in msgs[-1]["content"]
