"""Reviewers: score a sample against a recipe's rubric, JSON-schema constrained.

Each parses into a ReviewResult: named integer scores, an overall score on the rubric's
scale (what the decision rule reads), an optional label and a short critique.
"""
from __future__ import annotations

from abc import abstractmethod
from dataclasses import asdict, dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from roles.base import Drop, Role, parse_json_model

_SCORE_1_10 = {"type": "integer", "enum": list(range(1, 11))}
# maxLength keeps a rambling critique from eating the token budget.
_CRITIQUE = {"type": "string", "maxLength": 200}


@dataclass(frozen=True)
class ReviewResult:
    scores: dict
    overall: float
    label: str | None
    critique: str

    def as_dict(self) -> dict:
        return asdict(self)


def _schema(properties: dict) -> dict:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


class Reviewer(Role):
    name = "reviewer"
    output: type[BaseModel]

    def parse(self, row: dict, text: str) -> ReviewResult | Drop:
        parsed = parse_json_model(self.output, text)
        return parsed if isinstance(parsed, Drop) else self.result(parsed)

    @abstractmethod
    def result(self, parsed) -> ReviewResult:
        """The rubric's validated output -> scores and the overall score."""


class StoryReview(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    grammar: int = Field(ge=1, le=10)
    creativity: int = Field(ge=1, le=10)
    consistency: int = Field(ge=1, le=10)
    plot: int = Field(ge=1, le=10)
    age_group: Literal["3-5", "6-8", "9-12", "13+"]
    critique: str = Field(max_length=400)


class StoryReviewer(Reviewer):
    """TinyStories rubric: grammar, creativity, consistency, plot (1-10) and an age group."""

    version = 1
    axes = ("grammar", "creativity", "consistency", "plot")
    output = StoryReview
    # Scores first, critique last: the 135M model writes a score before it talks itself out of it.
    json_schema = _schema({**{a: _SCORE_1_10 for a in axes},
                           "age_group": {"type": "string", "enum": ["3-5", "6-8", "9-12", "13+"]},
                           "critique": _CRITIQUE})

    def result(self, r: StoryReview) -> ReviewResult:
        scores = {a: getattr(r, a) for a in self.axes}
        return ReviewResult(scores, sum(scores.values()) / len(scores), r.age_group, r.critique)


class EducationalReview(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    relevant_information: bool
    coherent_teaching: bool
    key_concepts_for_audience: bool
    clear_with_examples_or_exercises: bool
    outstanding: bool
    facts_wrong: bool
    critique: str = Field(max_length=400)


class TextbookReviewer(Reviewer):
    """Additive educational value 0-5 (phi-1 / FineWeb-Edu): a point per criterion met;
    no points at all where facts are wrong."""

    version = 1
    criteria = ("relevant_information", "coherent_teaching", "key_concepts_for_audience",
                "clear_with_examples_or_exercises", "outstanding")
    output = EducationalReview
    json_schema = _schema({**{c: {"type": "boolean"} for c in criteria}, "facts_wrong": {"type": "boolean"},
                           "critique": _CRITIQUE})

    def result(self, r: EducationalReview) -> ReviewResult:
        points = {c: int(getattr(r, c)) for c in self.criteria}
        total = 0 if r.facts_wrong else sum(points.values())
        return ReviewResult({**points, "facts_wrong": int(r.facts_wrong)}, float(total), None, r.critique)


class ProblemReview(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    clarity: int = Field(ge=1, le=10)
    solvability: int = Field(ge=1, le=10)
    critique: str = Field(max_length=400)


class ProblemReviewer(Reviewer):
    """Math: is the word problem clear, and can it be solved from what it states?"""

    version = 1
    axes = ("clarity", "solvability")
    output = ProblemReview
    json_schema = _schema({"clarity": _SCORE_1_10, "solvability": _SCORE_1_10, "critique": _CRITIQUE})

    def result(self, r: ProblemReview) -> ReviewResult:
        scores = {"clarity": r.clarity, "solvability": r.solvability}
        return ReviewResult(scores, (r.clarity + r.solvability) / 2, None, r.critique)
