"""Reviewer: scores a story on the TinyStories rubric, JSON-schema constrained."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from roles.base import Drop, Role, parse_json_model

AXES = ("grammar", "creativity", "consistency", "plot")
AGE_GROUPS = ("3-5", "6-8", "9-12", "13+")
_SCORE = {"type": "integer", "enum": list(range(1, 11))}


class Review(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    grammar: int = Field(ge=1, le=10)
    creativity: int = Field(ge=1, le=10)
    consistency: int = Field(ge=1, le=10)
    plot: int = Field(ge=1, le=10)
    age_group: Literal["3-5", "6-8", "9-12", "13+"]
    critique: str = Field(max_length=400)

    @property
    def overall(self) -> float:
        return sum(getattr(self, axis) for axis in AXES) / len(AXES)


class Reviewer(Role):
    name = "reviewer"
    version = 1
    # Scores first, critique last: the 135M model writes a score before it talks itself
    # out of it. maxLength keeps a rambling critique from eating the token budget.
    json_schema = {
        "type": "object",
        "properties": {
            **{axis: _SCORE for axis in AXES},
            "age_group": {"type": "string", "enum": list(AGE_GROUPS)},
            "critique": {"type": "string", "maxLength": 200},
        },
        "required": [*AXES, "age_group", "critique"],
        "additionalProperties": False,
    }

    def parse(self, row: dict, text: str) -> Review | Drop:
        return parse_json_model(Review, text)
