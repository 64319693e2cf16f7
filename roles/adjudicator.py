"""Adjudicator: sees the sample and all reviews, returns accept or reject with a reason."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from roles.base import JsonRole


class Verdict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    decision: Literal["accept", "reject"]
    reason: str = Field(max_length=200)


class Adjudicator(JsonRole):
    name = "adjudicator"
    version = 1
    output = Verdict
