"""The TinyStories simple vocabulary (~1,500 words a 3-4 year old knows) and the rule check
that measures a story against it. Word lists ship under prompts/tinystories/."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from roles.templates import data_file

_WORD = re.compile(r"[a-z]+")


def _lines(name: str) -> list[str]:
    return [line.strip() for line in data_file(f"tinystories/{name}").splitlines() if line.strip()]


@dataclass(frozen=True)
class Vocabulary:
    nouns: tuple[str, ...]
    verbs: tuple[str, ...]
    adjectives: tuple[str, ...]
    known: frozenset[str]          # every lemma a story may use, closed-class words included
    irregular: dict                # form -> lemma (ran -> run, mice -> mouse, better -> good)

    def lemmas(self, word: str) -> frozenset[str]:
        return _lemmas(word, self)

    def knows(self, word: str) -> bool:
        return _knows(word, self)

    def uses(self, text_words: list[str], target: str) -> bool:
        return any(target in self.lemmas(word) for word in text_words)

    def __hash__(self) -> int:
        return id(self)  # one loaded vocabulary per process; lets the lemma caches key on it


# ~10k distinct words cover a large job; caching makes the rule check ~10x cheaper.
@lru_cache(maxsize=1 << 16)
def _knows(word: str, vocab: "Vocabulary") -> bool:
    return any(lemma in vocab.known for lemma in _lemmas(word, vocab))


@lru_cache(maxsize=1 << 16)
def _lemmas(word: str, vocab: "Vocabulary") -> frozenset[str]:
    """Candidate lemmas of an inflected word; regular English suffixes, then irregulars."""
    out = {word}
    if word in vocab.irregular:
        out.add(vocab.irregular[word])
    for suffix, repl in (("ies", "y"), ("ied", "y"), ("ier", "y"), ("iest", "y"), ("ily", "y"),
                         ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("d", ""), ("ing", ""),
                         ("ing", "e"), ("er", ""), ("er", "e"), ("est", ""), ("est", "e"), ("ly", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 2:
            stem = word[: -len(suffix)] + repl
            out.add(stem)
            # hopped -> hop, bigger -> big: a doubled final consonant
            if len(stem) >= 3 and stem[-1] == stem[-2] and not repl:
                out.add(stem[:-1])
    return frozenset(out)


@lru_cache(maxsize=1)
def load_vocabulary() -> Vocabulary:
    nouns, verbs, adjectives = _lines("nouns.txt"), _lines("verbs.txt"), _lines("adjectives.txt")
    function_words = _lines("function_words.txt")
    irregular = dict(line.split("\t") for line in _lines("irregular_forms.tsv"))
    known = frozenset(nouns) | frozenset(verbs) | frozenset(adjectives) | frozenset(function_words)
    return Vocabulary(tuple(nouns), tuple(verbs), tuple(adjectives), known, irregular)


def words_of(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def vocabulary_check(text: str, verb: str, noun: str, adjective: str) -> dict:
    """Rule signals of one story: share of words outside the vocabulary, and whether the
    three seed words appear (in any inflection)."""
    vocab = load_vocabulary()
    words = words_of(text)
    outside = sorted({w for w in words if not vocab.knows(w)})
    outside_count = sum(1 for w in words if not vocab.knows(w))
    return {
        "words": len(words),
        "out_of_vocabulary_share": round(outside_count / len(words), 4) if words else 1.0,
        "out_of_vocabulary_words": outside[:50],
        "has_verb": vocab.uses(words, verb),
        "has_noun": vocab.uses(words, noun),
        "has_adjective": vocab.uses(words, adjective),
    }
