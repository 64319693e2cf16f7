"""Reviewers: score a sample against a rubric, JSON-schema constrained.

A rubric is a pydantic model (a `Rubric`): its fields are the JSON schema the model must
follow, its numeric and boolean fields are the score axes, `overall()` is what the decision
rule reads. A user's rubric is one class; stats, report, curate and export read the axes
from the stored scores, so a rubric with other axes needs no edits elsewhere.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import ClassVar, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field

from roles.base import Drop, Role, parse_json_model, schema_of

Score1to10 = Literal[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
# maxLength keeps a rambling critique from eating the token budget.
Critique = Field(max_length=200)


@dataclass(frozen=True)
class ReviewResult:
    scores: dict
    overall: float
    label: str | None
    critique: str
    # Logprob-weighted scores (G-Eval), when the job asks for them: {"axes": {axis: expected
    # value}, "overall": their mean, "sampled_overall": the rubric's own overall}. Stored as
    # `signals` rows (factory/steps/review.py), not in the review row: as_dict leaves it out.
    expected: dict | None = field(default=None, compare=False)

    def as_dict(self) -> dict:
        out = asdict(self)
        out.pop("expected")
        return out


class Rubric(BaseModel):
    """Subclass with the rubric's fields; a `critique: str` field is expected last."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # Fields of free text the rubric machinery stores but does not score (checked at load:
    # rubric_problem); a rubric adds its own as `free_text: ClassVar[tuple[str, ...]] = (...)`.
    free_text: ClassVar[tuple[str, ...]] = ("critique",)

    def scores(self) -> dict[str, int | float]:
        """Every int, float or bool field (booleans as 0/1)."""
        out = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, (bool, int, float)):
                out[name] = int(value) if isinstance(value, bool) else value
        return out

    def overall(self) -> float:
        values = list(self.scores().values())
        return sum(values) / len(values) if values else 0.0

    def label(self) -> str | None:
        return None

    def result(self) -> ReviewResult:
        return ReviewResult(self.scores(), float(self.overall()), self.label(), getattr(self, "critique", ""))


class Reviewer(Role):
    """Scores a sample with `output`, a Rubric; a recipe may pass another rubric."""

    name = "reviewer"
    output: type[Rubric]

    axes: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("output") is not None:
            cls.axes = axes_of(cls.output)

    def __init__(self, template, rubric: type[Rubric] | None = None):
        super().__init__(template)
        if rubric is not None and rubric is not self.output:
            self.output = rubric
            self.json_schema = schema_of(rubric)
            self.axes = axes_of(rubric)

    def parse(self, row: dict, text: str) -> ReviewResult | Drop:
        parsed = parse_json_model(self.output, text)
        return parsed if isinstance(parsed, Drop) else parsed.result()


def axes_of(rubric: type[Rubric]) -> tuple[str, ...]:
    """The score axes of a rubric: its numeric and boolean fields, in order."""
    def numeric(annotation) -> bool:
        args = getattr(annotation, "__args__", ())
        if args:
            return all(isinstance(a, (int, float)) or a in (int, float, bool) for a in args)
        return annotation in (int, float, bool)

    return tuple(n for n, f in rubric.model_fields.items() if numeric(f.annotation))


def rubric_problem(rubric: type[Rubric]) -> str | None:
    """The first field of a rubric that can be neither scored nor stored as a label or free
    text (a `str` field would vanish silently from stats and the report), or None."""
    for name, f in rubric.model_fields.items():
        args = get_args(f.annotation) if get_origin(f.annotation) is Literal else ()
        score = f.annotation in (int, float, bool) or (args and all(type(a) in (int, float) for a in args))
        label = args and all(isinstance(a, str) for a in args)
        if score or label or (name in rubric.free_text and f.annotation is str):
            continue
        kind = f.annotation.__name__ if type(f.annotation) is type else str(f.annotation).replace("typing.", "")
        return (f"field {name!r} is {kind}: a rubric field is a score (int, float, bool, or a Literal of numbers "
                f"such as Score1to10), a label (a Literal of strings) or free text (a str named in "
                f"{rubric.__name__}.free_text, now {', '.join(rubric.free_text) or 'none'})")
    return None


def integer_axes(rubric: type[Rubric]) -> dict[str, list[int]]:
    """The axes whose allowed values are a Literal of integers (Score1to10) -> those values:
    the axes an expected (logprob-weighted) score exists for."""
    out = {}
    for name, f in rubric.model_fields.items():
        args = get_args(f.annotation)
        if get_origin(f.annotation) is Literal and args and all(type(a) is int for a in args):
            out[name] = list(args)
    return out


class StoryReview(Rubric):
    """TinyStories rubric: grammar, creativity, consistency, plot (1-10) and an age group."""

    grammar: Score1to10
    creativity: Score1to10
    consistency: Score1to10
    plot: Score1to10
    age_group: Literal["3-5", "6-8", "9-12", "13+"]
    critique: str = Critique

    def label(self) -> str | None:
        return self.age_group


class StoryReviewer(Reviewer):
    version = 1
    output = StoryReview


class EducationalReview(Rubric):
    """Additive educational value 0-5 (phi-1 / FineWeb-Edu): a point per criterion met; no
    points at all where facts are wrong."""

    relevant_information: bool
    coherent_teaching: bool
    key_concepts_for_audience: bool
    clear_with_examples_or_exercises: bool
    outstanding: bool
    facts_wrong: bool
    critique: str = Critique

    def overall(self) -> float:
        if self.facts_wrong:
            return 0.0
        return float(sum(v for k, v in self.scores().items() if k != "facts_wrong"))


class TextbookReviewer(Reviewer):
    version = 1
    output = EducationalReview


class ProblemReview(Rubric):
    """Math: is the word problem clear, and can it be solved from what it states?"""

    clarity: Score1to10
    solvability: Score1to10
    critique: str = Critique


class ProblemReviewer(Reviewer):
    version = 1
    output = ProblemReview
