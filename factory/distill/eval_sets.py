"""Evaluation items that no training row saw.

held_out: problems of the source job set aside by seed before any mixture is drawn;
builtin: fresh problems of the built-in generator (exact answers) at another seed;
file: a GSM8K-format JSONL. Whatever the source, an item sharing a word n-gram (13 by
default, as in GPT-3's decontamination) with any training candidate is removed and counted.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from factory.keys import content_hash, digest
from factory.recipes.math_problems import generate_problem
from factory.recipes.seed_files import jsonl_record, read_lines
from factory.spec import JobError
from roles.answers import gsm8k_gold

_WORD = re.compile(r"\w+")
# Built-in problems are templated: some seeds draw a problem sharing a 13-gram with a
# training question. Draw up to this many per item wanted before giving up.
MAX_DRAWS_PER_ITEM = 20


@dataclass(frozen=True)
class EvalItem:
    item_id: str
    question: str
    answer: str  # reference: canonical number string (math) or the held-out story (stories)


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


class OverlapFilter:
    """Every n-gram of the training candidates; an item that shares one is out."""

    def __init__(self, training_texts: list[str], n: int):
        self.n, self.seen = n, set()
        self.problems = set()
        for text in training_texts:
            self.seen |= ngrams(text, n)
            self.problems.add(content_hash(text))

    def overlaps(self, text: str) -> bool:
        return content_hash(text) in self.problems or not ngrams(text, self.n).isdisjoint(self.seen)


def held_out(problems: list[dict], n: int, seed: int) -> list[dict]:
    """The n problems (of those with a trusted reference) set aside by seed."""
    return sorted(problems, key=lambda p: digest("held-out", seed, p["content_hash"]))[:n]


def builtin_items(n: int, seed: int, max_steps: int, overlap: OverlapFilter) -> tuple[list[EvalItem], int]:
    items, removed, index = [], 0, 0
    while len(items) < n:
        if index >= n * MAX_DRAWS_PER_ITEM:
            raise JobError(f"evaluation: only {len(items)} of {n} built-in problems at seed {seed} share no "
                           f"{overlap.n}-gram with the training rows; lower evaluation.problems or raise overlap_ngram")
        p = generate_problem(seed, index, steps=1 + index % max_steps)
        index += 1
        if overlap.overlaps(p.question):
            removed += 1
            continue
        items.append(EvalItem(f"builtin:{seed}:{index - 1}", p.question, p.answer))
    return items, removed


def file_items(path: str, n: int, seed: int, overlap: OverlapFilter) -> tuple[list[EvalItem], int]:
    """n items of a GSM8K-format file, drawn by seed; malformed lines are skipped."""
    try:
        lines = read_lines(path)
    except FileNotFoundError as err:
        raise JobError(f"evaluation.file: {err}") from None
    order = sorted(range(len(lines)), key=lambda i: digest("eval-file", seed, i))
    items, removed = [], 0
    for i in order:
        record = jsonl_record(path, i + 1, lines[i], ("question", "answer"))
        if isinstance(record, str) or "####" not in record["answer"]:
            continue
        if overlap.overlaps(record["question"]):
            removed += 1
            continue
        items.append(EvalItem(f"file:{i + 1}", record["question"].strip(), gsm8k_gold(record["answer"])))
        if len(items) == n:
            break
    if len(items) < n:
        raise JobError(f"evaluation.problems: {path} has {len(items)} usable items that share no "
                       f"{overlap.n}-gram with the training rows, {n} asked")
    return items, removed
