"""Adjudicator: sees the story and all reviews, returns accept or reject with a reason."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from roles.base import Drop, Role, parse_json_model


class Verdict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    decision: Literal["accept", "reject"]
    reason: str = Field(max_length=400)


class Adjudicator(Role):
    name = "adjudicator"
    version = 1
    json_schema = {
        "type": "object",
        "properties": {
            "decision": {"type": "string", "enum": ["accept", "reject"]},
            "reason": {"type": "string", "maxLength": 200},
        },
        "required": ["decision", "reason"],
        "additionalProperties": False,
    }

    def parse(self, row: dict, text: str) -> Verdict | Drop:
        return parse_json_model(Verdict, text)
