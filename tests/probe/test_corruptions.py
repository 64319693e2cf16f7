"""Every corruption kind: deterministic in (seed, sample id, kind), different from the original."""
import pytest

from factory.recipes.corruptions import (GENERIC, CorruptionContext, changed_number, corruption_rng, negated_statement,
                                       seed_words_removed, sentences, wrong_fact_or_number)
from factory.recipes.math import Math
from factory.recipes.textbook import Textbook
from factory.recipes.tinystories import TinyStories

STORY = ("Once upon a time there was a happy dog named Max. Max liked to jump in the big park every day. "
         "One day he saw a red ball under a tree. He ran to the ball and played with it all day. "
         "At night Max went home and slept well.")
OTHER = ("Lily had a small blue boat. She took it to the pond with her mom. The boat floated on the water. "
         "A duck swam next to it. Lily laughed and clapped her hands.")
SEED = {"verb": "jump", "noun": "ball", "adjective": "happy", "features": []}
CTX = CorruptionContext("s1", SEED, tuple(sorted(set((STORY + " " + OTHER).lower().replace(".", "").split()))),
                        (OTHER,))
LESSON = ("Water boils at 100 degrees Celsius at sea level. The Earth is the third planet from the Sun. "
          "Plants can make food from light. In 1969 people walked on the Moon.")
QUESTION = "Sam has 12 apples and buys 5 more. How many apples does Sam have now?"

ALL_KINDS = {**TinyStories.probe_corruptions(), **Textbook.probe_corruptions(), **Math.probe_corruptions()}
TEXT_OF = {"wrong_fact_or_number": LESSON, "number_changed": QUESTION}


@pytest.mark.parametrize("kind", sorted(ALL_KINDS))
def test_each_kind_is_deterministic_and_changes_the_text(kind):
    fn, text = ALL_KINDS[kind], TEXT_OF.get(kind, STORY)
    first = fn(text, corruption_rng(7, "s1", kind), CTX)
    again = fn(text, corruption_rng(7, "s1", kind), CTX)
    assert first is not None and first.strip() != text.strip()
    assert first == again
    # Another seed (or sample id) draws again: over a few seeds at least one output differs.
    others = {fn(text, corruption_rng(s, "s1", kind), CTX) for s in range(8)}
    assert len(others) > 1


def test_recipes_declare_the_generic_five_and_their_own():
    generic = set(GENERIC)
    assert generic == {"sentence_shuffle", "word_salad", "truncation", "repetition_loop", "splice"}
    assert set(TinyStories.probe_corruptions()) == generic | {"seed_words_removed"}
    assert set(Textbook.probe_corruptions()) == generic | {"wrong_fact_or_number"}
    assert set(Math.probe_corruptions()) == generic | {"number_changed"}


def test_what_each_corruption_does():
    rng = lambda kind: corruption_rng(3, "s1", kind)  # noqa: E731
    shuffled = GENERIC["sentence_shuffle"](STORY, rng("sentence_shuffle"), CTX)
    assert sorted(sentences(shuffled)) == sorted(sentences(STORY)) and sentences(shuffled) != sentences(STORY)
    salad = GENERIC["word_salad"](STORY, rng("word_salad"), CTX).split()
    changed = sum(a != b for a, b in zip(salad, STORY.split()))
    assert len(salad) == len(STORY.split()) and changed >= round(0.4 * len(salad)) - 2  # punctuation kept per token
    cut = GENERIC["truncation"](STORY, rng("truncation"), CTX)
    assert STORY.startswith(cut) and cut[-1] not in ".!?" and len(cut.split()) <= 0.6 * len(STORY.split())
    loop = GENERIC["repetition_loop"](STORY, rng("repetition_loop"), CTX).split()
    assert len(loop) > len(STORY.split()) and len(set(loop)) < len(set(STORY.split()))
    spliced = GENERIC["splice"](STORY, rng("splice"), CTX)
    assert spliced.startswith("Once upon a time") and spliced.endswith(sentences(OTHER)[-1])
    assert sentences(OTHER)[0] not in spliced and sentences(STORY)[-1] not in spliced


def test_seed_words_removed_replaces_every_form():
    text = "The happy dog jumps. He jumped on the ball. Balls are fun for a happy dog."
    out = seed_words_removed(text, corruption_rng(1, "s", "seed_words_removed"), CTX)
    words = out.lower().replace(".", "").split()
    assert not {"happy", "jumps", "jumped", "ball", "balls"} & set(words)
    assert len(words) == len(text.split())
    assert seed_words_removed("A cat sat.", corruption_rng(1, "s", "k"), CTX) is None  # nothing to remove


def test_number_and_fact_changes():
    out = changed_number(QUESTION, corruption_rng(2, "q", "number_changed"), CTX)
    assert out != QUESTION and [w for w in out.split() if w.isdigit()] != ["12", "5"]
    assert changed_number("No numbers here.", corruption_rng(2, "q", "n"), CTX) is None
    negated = negated_statement("The Earth is round. Fish can swim.", corruption_rng(2, "t", "k"), CTX)
    assert " not " in negated or "cannot" in negated
    # no number: the wrong fact is a negated statement
    assert "not" in wrong_fact_or_number("Cats are mammals. Dogs are loyal.", corruption_rng(2, "t", "k"), CTX)


def test_cannot_corrupt_returns_none():
    one = "Just one sentence here without an end"
    assert GENERIC["sentence_shuffle"](one, corruption_rng(1, "s", "k"), CTX) is None
    alone = CorruptionContext("s1", SEED, CTX.pool_words, ())
    assert GENERIC["splice"](STORY, corruption_rng(1, "s", "k"), alone) is None  # no other sample
    assert GENERIC["truncation"]("Too short.", corruption_rng(1, "s", "k"), CTX) is None
