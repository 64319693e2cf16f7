"""Controlled corruptions of an accepted sample: what a judge that works must score lower.

Each corruption is a function `(text, rng, ctx) -> str | None`: the corrupted text, or None
when this text cannot be corrupted that way (one sentence cannot be shuffled, a story
without its seed words has none to remove); the probe counts those as skipped. `rng` is
seeded by (probe seed, sample id, kind) (`corruption_rng`), so the same probe makes the
same corruptions on any machine. Recipes declare which kinds apply
(`Recipe.probe_corruptions()`): the generic five below for every text recipe, plus their own.
"""
from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field

__all__ = ["GENERIC", "HELD_OUT", "CorruptionContext", "changed_number", "corruption_rng", "negated_statement",
           "repetition_loop", "sentence_shuffle", "splice", "truncation", "word_salad"]

# 40% of words swapped: the share the first measurement used (the judge still
# preferred the salad in more than half of the pairs).
SALAD_SHARE = 0.4
# Truncation keeps 25%..60% of the words: the "cut to a quarter" at the low end,
# and never so much that the loss is a last clause a reviewer could forgive.
TRUNCATE_KEEP = (0.25, 0.60)
# A loop starts after 30%..60% of the text and repeats a 4..8-word phrase (a small model's
# loops are phrase-long) until the text is as long as the original.
LOOP_START = (0.30, 0.60)
LOOP_WORDS = (4, 8)

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)]*\s+")
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.]\d)")


@dataclass(frozen=True)
class CorruptionContext:
    """What a corruption may read beside the text: the sample's seed variables, the words
    of every probed sample (word salad draws from them) and the other probed texts (splice)."""

    sample_id: str
    seed: dict = field(default_factory=dict)
    pool_words: tuple[str, ...] = ()
    others: tuple[str, ...] = ()
    prompt: str = ""  # the generator's rendered prompt for this seed, where the recipe can render it


def corruption_rng(seed: int, sample_id: str, kind: str) -> random.Random:
    # sha256, not hash(): Python salts str hashes per process.
    digest = hashlib.sha256(f"probe:{seed}:{sample_id}:{kind}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def _different(original: str, corrupted: str | None) -> str | None:
    if corrupted is None or corrupted.strip() == original.strip():
        return None
    return corrupted


def sentence_shuffle(text: str, rng: random.Random, ctx: CorruptionContext) -> str | None:
    """The same sentences in another order (coherence, not wording, is what changed)."""
    parts = sentences(text)
    if len(set(parts)) < 2:
        return None
    order = list(range(len(parts)))
    rng.shuffle(order)
    if order == sorted(order):  # the identity permutation: rotate by one instead
        order = order[1:] + order[:1]
    return _different(text, " ".join(parts[i] for i in order))


def word_salad(text: str, rng: random.Random, ctx: CorruptionContext) -> str | None:
    """40% of the words (chosen by rng) swapped for other words of the probed samples;
    punctuation, case of the first letter and spacing kept."""
    spans = [m.span() for m in _WORD.finditer(text)]
    pool = sorted(set(ctx.pool_words)) or sorted({m.group().lower() for m in _WORD.finditer(text)})
    if not spans or len(pool) < 2:
        return None
    chosen = sorted(rng.sample(range(len(spans)), max(1, round(SALAD_SHARE * len(spans)))))
    out, last = [], 0
    for i in chosen:
        start, end = spans[i]
        word = text[start:end]
        new = rng.choice(pool)
        while new == word.lower():
            new = rng.choice(pool)
        out += [text[last:start], new.capitalize() if word[0].isupper() else new]
        last = end
    out.append(text[last:])
    return _different(text, "".join(out))


def truncation(text: str, rng: random.Random, ctx: CorruptionContext) -> str | None:
    """Cut mid-sentence after 25%..60% of the words: the text stops inside a sentence,
    with no final punctuation (what max_tokens does to a long answer)."""
    words = text.split()
    if len(words) < 4:
        return None
    cut = rng.randint(max(1, int(TRUNCATE_KEEP[0] * len(words))), max(1, int(TRUNCATE_KEEP[1] * len(words))))
    while cut > 1 and words[cut - 1][-1] in ".!?\"'”’":  # a sentence end: cut one word earlier
        cut -= 1
    kept = " ".join(words[:cut]).rstrip(",;:-—")
    return _different(text, kept)


def repetition_loop(text: str, rng: random.Random, ctx: CorruptionContext) -> str | None:
    """The first 30%..60% of the words, then a 4..8-word phrase of it repeated until the
    text is as long as the original: a small model's degenerate loop."""
    words = text.split()
    if len(words) < 8:
        return None
    start = rng.randint(int(LOOP_START[0] * len(words)), int(LOOP_START[1] * len(words)))
    size = min(rng.randint(*LOOP_WORDS), start)
    phrase = words[start - size:start]
    out = words[:start]
    while len(out) < len(words) + size:  # at least one repeat beyond the original length
        out += phrase
    return _different(text, " ".join(out))


def splice(text: str, rng: random.Random, ctx: CorruptionContext) -> str | None:
    """This text's first sentences (at least one, never all), then another probed sample's
    sentences from a point past its first: each part is fluent, the whole is not one text."""
    others = [o for o in ctx.others if o.strip() and o.strip() != text.strip()]
    mine = sentences(text)
    if not others or len(mine) < 2:
        return None
    theirs = sentences(rng.choice(others))
    head = mine[:rng.randint(1, len(mine) - 1)]
    tail = theirs[rng.randint(1, len(theirs) - 1):] if len(theirs) > 1 else theirs
    return _different(text, " ".join(head + tail))


def changed_number(text: str, rng: random.Random, ctx: CorruptionContext) -> str | None:
    """One number of the text (chosen by rng) replaced by another: a wrong figure in a
    lesson, or a question whose reference answer no longer fits it."""
    found = list(_NUMBER.finditer(text))
    if not found:
        return None
    m = rng.choice(found)
    value = m.group()
    if "." in value:
        new = f"{float(value) * rng.choice((2, 3, 0.5)) + 1:.{len(value.split('.')[1])}f}"
    else:
        n = int(value)
        # A year stays a plausible year; a small count changes by a noticeable amount.
        new = str(n + rng.choice((-1, 1)) * rng.randint(11, 90)) if 1000 <= n <= 2100 else str(
            max(0, n + rng.choice((-1, 1)) * rng.randint(max(1, n // 2), n + 3)))
        if new == value:
            new = str(n + 7)
    return _different(text, text[:m.start()] + new + text[m.end():])


_NEGATIONS = ((" is ", " is not "), (" are ", " are not "), (" can ", " cannot "), (" was ", " was not "),
              (" were ", " were not "), (" has ", " does not have "), (" have ", " do not have "),
              (" will ", " will not "), (" does ", " does not "))


def negated_statement(text: str, rng: random.Random, ctx: CorruptionContext) -> str | None:
    """A statement made false: a sentence (chosen by rng) whose verb is negated."""
    parts = sentences(text)
    candidates = [(i, a, b) for i, s in enumerate(parts) for a, b in _NEGATIONS if a in f" {s} "]
    if not candidates:
        return None
    i, a, b = rng.choice(candidates)
    parts[i] = f" {parts[i]} ".replace(a, b, 1).strip()
    return _different(text, " ".join(parts))


def wrong_fact_or_number(text: str, rng: random.Random, ctx: CorruptionContext) -> str | None:
    """Textbooks: a number changed when the text has one, else a statement negated."""
    return changed_number(text, rng, ctx) or negated_statement(text, rng, ctx)


GENERIC = {
    "sentence_shuffle": sentence_shuffle,
    "word_salad": word_salad,
    "truncation": truncation,
    "repetition_loop": repetition_loop,
    "splice": splice,
}


def seed_words_removed(text: str, rng: random.Random, ctx: CorruptionContext) -> str | None:
    """TinyStories: every form of the seed verb, noun and adjective replaced by another
    vocabulary word of the same class (the story stays fluent but no longer answers its
    prompt). None when the story uses none of them."""
    from factory.recipes.vocabulary import load_vocabulary

    vocab = load_vocabulary()
    classes = {"verb": vocab.verbs, "noun": vocab.nouns, "adjective": vocab.adjectives}
    targets = {ctx.seed[k]: k for k in classes if isinstance(ctx.seed.get(k), str)}
    seed_words = set(targets)
    swaps: dict[str, str] = {}

    def swap(m: re.Match) -> str:
        word = m.group()
        hit = next((t for t in targets if t in vocab.lemmas(word.lower())), None)
        if hit is None:
            return word
        if hit not in swaps:
            choices = [w for w in classes[targets[hit]] if w not in seed_words]
            swaps[hit] = rng.choice(choices)
        new = swaps[hit]
        return new.capitalize() if word[0].isupper() else new

    return _different(text, _WORD.sub(swap, text))


# Held-out kinds (issue 21): corruptions that no threshold, weight or gate setting is chosen
# on. `factory probe` runs them beside the declared kinds and reports them apart ("held-out
# kinds"), so the decision score is seen on failures it was not fitted to.
REPEAT_COPIES = 3      # the case: one middle sentence said 3 times
TYPO_SHARE = 0.15      # of the words of 4+ letters, two neighbouring letters swapped
DROP_SHARE = 0.5       # of the function words below, deleted (telegraphic, ungrammatical text)
_FUNCTION_WORDS = frozenset("a an the to of and was is were in on at with for his her it".split())


def sentence_repeated(text: str, rng: random.Random, ctx: CorruptionContext) -> str | None:
    """One middle sentence (not the first or last) said REPEAT_COPIES times in a row."""
    parts = sentences(text)
    if len(parts) < 3:
        return None
    i = rng.randint(1, len(parts) - 2)
    return _different(text, " ".join(parts[:i] + [parts[i]] * REPEAT_COPIES + parts[i + 1:]))


def instruction_echo(text: str, rng: random.Random, ctx: CorruptionContext) -> str | None:
    """A line of the generator's own prompt (chosen by rng) written before the text, as a
    small model that restates its instructions does. None without the rendered prompt."""
    lines = [line.strip() for line in ctx.prompt.splitlines() if len(line.split()) >= 6]
    if not lines:
        return None
    return _different(text, f"{rng.choice(lines)}\n\n{text}")


def other_story(text: str, rng: random.Random, ctx: CorruptionContext) -> str | None:
    """Another probed sample's whole text in place of this one: fluent, finished, but not an
    answer to this sample's seed (its words, topic or question)."""
    others = [o for o in ctx.others if o.strip() and o.strip() != text.strip()]
    return _different(text, rng.choice(others)) if others else None


def typos(text: str, rng: random.Random, ctx: CorruptionContext) -> str | None:
    """TYPO_SHARE of the words of 4+ letters with two neighbouring letters swapped."""
    spans = [m.span() for m in _WORD.finditer(text) if m.end() - m.start() >= 4]
    if not spans:
        return None
    chars = list(text)
    for start, end in rng.sample(spans, max(1, round(TYPO_SHARE * len(spans)))):
        at = rng.randint(start, end - 2)
        chars[at], chars[at + 1] = chars[at + 1], chars[at]
    return _different(text, "".join(chars))


def dropped_function_words(text: str, rng: random.Random, ctx: CorruptionContext) -> str | None:
    """DROP_SHARE of the articles, prepositions and auxiliaries deleted ("Tom went park with dog")."""
    found = [m for m in re.finditer(r"\b[A-Za-z]+\b ?", text) if m.group().strip().lower() in _FUNCTION_WORDS]
    if len(found) < 2:
        return None
    dropped = {id(m) for m in rng.sample(found, max(1, round(DROP_SHARE * len(found))))}
    out, last = [], 0
    for m in found:
        if id(m) in dropped:
            out.append(text[last:m.start()])
            last = m.end()
    out.append(text[last:])
    return _different(text, "".join(out))


HELD_OUT = {
    "sentence_repeated": sentence_repeated,
    "instruction_echo": instruction_echo,
    "other_story": other_story,
    "typos": typos,
    "dropped_function_words": dropped_function_words,
}
