"""The story gates for what a likelihood rewards or cannot see (issue 21): unfinished
endings, repeated sentences or lines, phrase loops, prompt echo, and too few seed words;
each a rule check with a reason the verdict (and factory explain) carries."""
import pytest

from support import fake_job
from factory.recipes.corruptions import HELD_OUT, CorruptionContext, corruption_rng
from factory.recipes import text_checks
from factory.recipes.tinystories import TinyStories
from factory.spec import parse_job

STORY = ("Tom had a happy dog. The dog liked to jump over the red ball. One day the ball rolled away. "
         "Tom and the dog ran after it. They found it under a big tree and went home.")
SEED = {"verb": "jump", "noun": "ball", "adjective": "happy", "features": []}


def recipe(**decision):
    job = fake_job(recipe="tinystories", decision=decision)
    job["roles"]["generator"]["template"] = "tinystories/generator@2"
    spec = parse_job(job)
    return TinyStories(spec)


def gate(text, **decision):
    r = recipe(**decision)
    return r.rule_reject(r.rule_checks(SEED, text))


def test_a_finished_story_using_its_seed_words_passes():
    checks = recipe().rule_checks(SEED, STORY)
    assert checks["ends_cleanly"] and checks["repeated_sentences"] == 0 and checks["longest_loop"] == 1
    assert checks["prompt_echo"] == []
    assert gate(STORY) is None


@pytest.mark.parametrize("ending", ['He said "Bye!"', "They went home.", "Was it fun?", "The end…", "(They slept.)"])
def test_terminal_punctuation_counts_inside_quotes_and_brackets(ending):
    assert text_checks.ends_cleanly(f"Tom ran. {ending}")


def test_a_story_cut_mid_sentence_is_rejected_as_unfinished():
    assert gate(STORY[:-12])[0] == "unfinished"
    assert not text_checks.ends_cleanly("They found it under a big tree and")


def test_any_repeated_sentence_or_line_is_rejected():
    middle = "One day the ball rolled away."
    once_more = STORY.replace(middle, f"{middle} {middle}")
    stage, reason = gate(once_more)
    assert stage == "repeated_sentence" and reason.startswith("1 sentence")
    # compared by words: case and punctuation do not hide a repeat; lines count too
    assert text_checks.repeated_sentences("The dog ran home fast.\nthe dog ran home fast!") == 1
    # short exclamations repeat in good stories
    assert text_checks.repeated_sentences("Oh no! Tom fell down the hill. Oh no! He got up.") == 0


def test_a_phrase_looping_back_to_back_is_rejected():
    looped = STORY[:-1] + " and the dog ran and the dog ran and the dog ran."
    assert text_checks.longest_loop(looped) == 3
    assert gate(looped)[0] == "loop"
    assert text_checks.longest_loop("Knock knock knock. No, no, no, said Tom.") == 1


def test_prompt_echo_is_rejected_with_the_echoed_words():
    r = recipe()
    prompt = r.generator_prompt(SEED)
    assert "a happy ball that likes to jump" in prompt  # the v2 template makes the seed words the subject
    echoed = "You are a storyteller for toddlers. Your stories are short. " + STORY
    stage, reason = r.rule_reject(r.rule_checks(SEED, echoed))
    assert stage == "prompt_echo" and "storyteller for toddlers" in reason


def test_seed_words_needed_follow_min_seed_words_then_require_seed_words():
    two_of_three = STORY.replace("happy", "big")
    assert gate(two_of_three, require_seed_words=False) is None
    assert gate(two_of_three)[0] == "seed_words"  # the recipe's default: all three
    assert gate(two_of_three, min_seed_words=2) is None
    stage, reason = gate(two_of_three.replace("ball", "toy"), min_seed_words=2)
    assert stage == "seed_words" and reason.startswith("uses 1 of its 3 seed words (needs 2)")


def test_min_seed_words_is_absent_from_the_fingerprint_at_its_default():
    job = fake_job(recipe="tinystories")
    assert parse_job(job).fingerprint == parse_job(fake_job(recipe="tinystories",
                                                            decision={"min_seed_words": None})).fingerprint
    assert parse_job(fake_job(recipe="tinystories", decision={"min_seed_words": 2})).fingerprint != \
        parse_job(job).fingerprint


def test_a_story_that_talks_about_itself_is_rejected():
    stage, reason = gate(STORY + " This story has a moral value.")
    assert stage == "meta_narration" and "This story has" in reason
    assert text_checks.meta_narration("The story: Tom ran.") == ["The story:"]
    # a TinyStories ending, and a story inside the story, are not meta narration
    assert text_checks.meta_narration("The moral of the story is to share. Mom read the story book.") == []


def test_rows_made_before_the_new_checks_pass_them():
    r = recipe(require_seed_words=False)
    old = {k: v for k, v in r.rule_checks(SEED, STORY[:-12]).items()
           if k not in ("ends_cleanly", "repeated_sentences", "longest_loop", "prompt_echo", "meta_narration")}
    assert r.rule_reject(old) is None


@pytest.mark.parametrize("kind", sorted(HELD_OUT))
def test_each_held_out_kind_is_deterministic_changes_the_text_and_is_not_declared(kind):
    ctx = CorruptionContext("s1", SEED, tuple(STORY.lower().split()), ("Lily had a boat. It was blue. She smiled.",),
                            recipe().generator_prompt(SEED))
    fn = HELD_OUT[kind]
    first = fn(STORY, corruption_rng(7, "s1", kind), ctx)
    assert first is not None and first != STORY and first == fn(STORY, corruption_rng(7, "s1", kind), ctx)
    assert kind not in TinyStories.probe_corruptions()


def test_text_gates_signal_records_the_checks_and_rejects_nothing():
    looped = STORY + " " + STORY.split(". ")[1] + "."
    assert gate(looped)[0] == "repeated_sentence"
    assert gate(looped, text_gates="signal") is None
    assert recipe(text_gates="signal").rule_checks(SEED, looped)["repeated_sentences"] == 1


def test_an_unfinished_story_is_kept_where_the_job_keeps_truncated_ones():
    cut = STORY[:-12]
    assert gate(cut)[0] == "unfinished"
    assert gate(cut, truncated="keep") is None


def test_the_seed_words_signal_row_gives_each_storys_share():
    r = recipe(min_seed_words=2)
    value, details = r.rule_signal_rows(r.rule_checks(SEED, STORY.replace("happy", "big")))["seed_words"]
    assert value == pytest.approx(2 / 3, abs=1e-4) and details == {"used": ["verb", "noun"], "needed": 2}
    assert r.rule_signal_rows(None) == {}
