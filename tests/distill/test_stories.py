"""Stories evaluation: held-out openings, the student's continuations graded by the reviewer
rubric through the completions cache; the fake backend for units, SmolLM2 for the real path."""
import math
from collections import Counter

import pytest
from fakes import FakeBackend, fake_identity

from factory.backends import register
from factory.distill.spec import EvaluationSpec
from factory.distill.stories import ContinuationGrader, evaluate_stories, mean_interval, story_items
from factory.keys import content_hash
from factory.recipes.tinystories import TinyStories
from factory.spec import JobError, RoleSpec
from roles import Drop, ReviewResult
from stores import Store

JUNK = "zzjunk"  # a continuation holding this gets a prose answer from the judge below


class JunkOnceBackend(FakeBackend):
    """The fake judge, except that it answers one marked continuation with prose, as an
    unconstrained small model does."""

    def _answer(self, r):
        return "Sure! The story is nice." if JUNK in r.messages[-1]["content"] else super()._answer(r)


@pytest.fixture
def junk_backend():
    """Registered only for the test that uses it: the registry is global, and other tests
    list the registered backends."""
    from factory.backends import _REGISTRY

    register("fake-junk", fake_identity, lambda ref, threads=1: JunkOnceBackend(ref.model, threads))
    yield "fake-junk"
    _REGISTRY.pop("fake-junk", None)


def story(i: int, words: int) -> dict:
    text = " ".join(f"w{i}_{k}" for k in range(words))
    return {"sample_id": f"s{i}", "text": text, "content_hash": content_hash(text)}


def fake_generate(student, prompts, max_new_tokens, batch_size=16, sample=False, temperature=0.7, seed=0):
    assert not sample and max_new_tokens == 40
    return [(f" and then {JUNK} happened." if "w1_" in p else " and they all went home happy.", 7 + i)
            for i, p in enumerate(prompts)]


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "eval.duckdb") as s:
        yield s


def test_story_items_are_seeded_openings_and_skip_short_stories():
    stories = [story(i, 30) for i in range(10)] + [story(100 + i, 17) for i in range(5)]  # 17 <= 12 + 5
    items = story_items(stories, 4, seed=7, prompt_words=12)
    assert items == story_items(list(reversed(stories)), 4, seed=7, prompt_words=12)  # order-free, repeatable
    assert len(items) == 4 and not any(it.item_id.startswith("s10") for it in items)
    by_id = {s["sample_id"]: s["text"] for s in stories}
    for it in items:
        assert it.question == " ".join(by_id[it.item_id].split()[:12]) and it.answer == by_id[it.item_id]
    assert [it.item_id for it in story_items(stories, 4, seed=8, prompt_words=12)] != [it.item_id for it in items]


def test_story_items_too_few_long_stories_is_one_line_error():
    with pytest.raises(JobError, match="1 of the source job's 2 stories have more than 17 words, 2 asked"):
        story_items([story(0, 30), story(1, 17)], 2, seed=0, prompt_words=12)


def test_evaluate_stories_metrics_and_rows(store, junk_backend):
    stories = [story(i, 30) for i in range(6)]
    items = story_items(stories, 6, seed=1, prompt_words=5)
    grader = ContinuationGrader(RoleSpec(backend="fake-junk", model="fake", template="tinystories/reviewer@1"),
                                store, seed=3)
    spec = EvaluationSpec(max_new_tokens=40, grading={"prompt_words": 5})
    report = evaluate_stories(None, items, spec, grader, generate_fn=fake_generate)
    m, rows = report.metrics, report.rows

    assert [r["item_id"] for r in rows] == [it.item_id for it in items]
    junk = next(r for r in rows if r["item_id"] == "s1")
    assert junk["score"] is None and junk["details"]["drop"].startswith("invalid JSON")
    assert "nice" in junk["details"]["raw"]
    graded = [r for r in rows if r["score"] is not None]
    assert (m["n"], m["graded"], m["dropped"]) == (6, 5, 1)
    scores = [r["score"] for r in graded]
    mean = sum(scores) / 5
    half = 1.96 * math.sqrt(sum((s - mean) ** 2 for s in scores) / 4) / math.sqrt(5)
    assert m["mean_score"] == pytest.approx(mean, abs=1e-4)
    assert (m["ci_low"], m["ci_high"]) == (pytest.approx(mean - half, abs=1e-4), pytest.approx(mean + half, abs=1e-4))
    assert m["axes"]["grammar"] == pytest.approx(sum(r["details"]["scores"]["grammar"] for r in graded) / 5, abs=1e-4)
    # the fake draws each review's age group from the schema's enum: the tally must match the rows
    labels = Counter(r["details"]["label"] for r in graded)
    assert m["age_groups"] == dict(sorted(labels.items())) and sum(m["age_groups"].values()) == 5
    assert m["mean_output_tokens"] == pytest.approx(7 + 2.5)
    first = rows[0]
    assert first["prompt"] == items[0].question and first["reference"] == items[0].answer
    assert first["answer"] is None and first["correct"] is None and first["output_tokens"] == 7
    # The judge saw the opening and the continuation, split by ***, under the continuation role.
    assert grader.bound.role.name == "continuation_reviewer"
    assert grader.bound.role.template.ref == "tinystories/continuation_reviewer@1"
    grader.close()


def test_grade_is_cached_and_renders_an_empty_continuation(store):
    import fakes

    grader = ContinuationGrader(RoleSpec(backend="fake", model="fake", template="tinystories/reviewer@1"), store)
    items = [("a", "Once upon a time", " there was a cat."), ("b", "Tom had a ball", "")]
    first = grader.grade(items)
    assert len(first) == 2 and all(isinstance(r, ReviewResult) for r in first) and grader.caller.model_calls == 2
    prompt = fakes.CALLS[1].messages[-1]["content"]
    assert "Tom had a ball *** (the student wrote nothing)" in prompt
    assert grader.grade(items) == first and grader.caller.model_calls == 2


def test_mean_interval_needs_two_values():
    assert mean_interval([]) == (None, None) and mean_interval([5.0]) == (None, None)
    assert mean_interval([4.0, 6.0]) == pytest.approx((5 - 1.96, 5 + 1.96))


@pytest.mark.model
def test_real_reviewer_grades_continuations_once(store):
    """SmolLM2-135M with the tinystories reviewer's default sampling (160 tokens): the
    schema keeps its output parseable; ~5 s a review on 2 cores."""
    defaults = TinyStories.roles["reviewer"].defaults()
    grader = ContinuationGrader(RoleSpec(**defaults), store, seed=0)
    items = [("a", "Once upon a time there was a little dog named Max.",
              " Max liked to run in the park. One day he found a red ball and played with it all day."),
             ("b", "Lily wanted to bake a cake for her mom.", " She got flour and eggs. The cake was big and happy.")]
    try:
        reviews = grader.grade(items)
        assert len(reviews) == 2 and all(isinstance(r, ReviewResult) for r in reviews), \
            [r for r in reviews if isinstance(r, Drop)]
        assert all(1 <= r.overall <= 10 for r in reviews) and grader.caller.model_calls == 2
        assert grader.grade(items) == reviews and grader.caller.model_calls == 2  # all cache hits
    finally:
        grader.close()
