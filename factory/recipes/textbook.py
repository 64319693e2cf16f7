"""Textbook-style recipe (phi-1, Cosmopedia): seeds are topic x audience x style; rule
signals are length, repeated n-grams and format."""
from __future__ import annotations

import re
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field

from factory.recipes.base import RoleDef, SeedDrop, TextRecipe, rng_for
from factory.recipes.seed_files import jsonl_record, read_lines
from factory.recipes.text_checks import NGRAM, repeated_ngram_ratio, repetition_reject
from roles import Adjudicator, Generator, TextbookReviewer
from roles.templates import data_file


def _shipped(name: str) -> list[str]:
    return [line.strip() for line in data_file(f"textbook/{name}").splitlines() if line.strip()]


SEED_VARIABLES = frozenset({"topic", "extract", "audience", "style"})


class TextbookOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    topics_file: str | None = Field(
        None, description="a topic a line, or JSONL with 'topic' and an optional 'extract'; default: the shipped list")
    audiences: list[str] | None = Field(None, min_length=1, description="default: the four shipped audiences")
    styles: list[str] | None = Field(None, min_length=1, description="default: the four shipped styles")
    min_words: int = Field(120, ge=1, description="shorter texts are dropped")


class Textbook(TextRecipe):
    name = "textbook"
    description = "textbook-style lessons: topic x audience x style (phi-1, Cosmopedia)"
    Options = TextbookOptions
    roles = {
        "generator": RoleDef(lambda t, r: Generator(t, min_words=r.options.min_words), "textbook/generator@1",
                             SEED_VARIABLES, {"max_tokens": 600}),
        "reviewer": RoleDef(lambda t, r: TextbookReviewer(t), "textbook/reviewer@1", SEED_VARIABLES | {"text"},
                            {"temperature": 0.7, "max_tokens": 160}),
        "adjudicator": RoleDef(lambda t, r: Adjudicator(t), "textbook/adjudicator@1",
                               SEED_VARIABLES | {"text", "reviews"}, {"temperature": 0.2, "max_tokens": 120}),
    }
    # phi-1 / FineWeb-Edu style: keep educational value >= 3 of 5
    decision = {"accept_mean": 3.0, "max_spread": 1.0, "reject_mean": 2.0}
    score_range = (0, 5)

    @cached_property
    def topic_lines(self) -> list[tuple[int, str]]:
        """(1-based line number, line) of every non-blank topic line."""
        if self.options.topics_file:
            lines = read_lines(self.options.topics_file)
        else:
            lines = tuple(_shipped("topics.txt"))
        return [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]

    @cached_property
    def order(self) -> list[int]:
        # A seeded permutation walks every topic once before any repeats.
        order = list(range(len(self.topic_lines)))
        rng_for(self.spec.seed, 0, "topics").shuffle(order)
        return order

    def _topic(self, line_number: int, line: str) -> dict | SeedDrop:
        if not line.lstrip().startswith("{"):
            return {"topic": line.strip(), "extract": ""}
        record = jsonl_record(self.options.topics_file, line_number, line, ("topic",))
        if isinstance(record, str):
            return SeedDrop(record, line)
        return {"topic": record["topic"].strip(), "extract": str(record.get("extract") or "")[:2000]}

    def make_seed(self, index: int) -> dict | SeedDrop:
        line_number, line = self.topic_lines[self.order[index % len(self.order)]]
        topic = self._topic(line_number, line)
        if isinstance(topic, SeedDrop):
            return topic
        rng = rng_for(self.spec.seed, index)
        audiences = self.options.audiences or _shipped("audiences.txt")
        styles = self.options.styles or _shipped("styles.txt")
        return {**topic, "audience": rng.choice(audiences), "style": rng.choice(styles)}

    def rule_checks(self, seed: dict, text: str) -> dict:
        words = re.findall(r"\w+", text.lower())
        paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
        return {
            "words": len(words),
            "paragraphs": len(paragraphs),
            f"repeated_{NGRAM}gram_ratio": repeated_ngram_ratio(words),
            "has_example_or_exercise": bool(re.search(r"\b(for example|example|exercise|try this|e\.g\.)", text, re.I)),
            "mentions_topic": any(w in words for w in re.findall(r"\w+", seed["topic"].lower()) if len(w) > 3),
            "ends_cleanly": text.rstrip()[-1:] in ".!?)\"'`",
        }

    def rule_reject(self, checks: dict) -> tuple[str, str] | None:
        return repetition_reject(checks[f"repeated_{NGRAM}gram_ratio"])

    @classmethod
    def rule_signals(cls, checks: dict | None) -> list[float]:
        return [1.0 - float(checks[f"repeated_{NGRAM}gram_ratio"])] if checks else []

    @classmethod
    def probe_corruptions(cls) -> dict:
        from factory.recipes.corruptions import wrong_fact_or_number

        return {**super().probe_corruptions(), "wrong_fact_or_number": wrong_fact_or_number}
