"""Instruction data (PersonaHub / Magpie style): a writer that makes an instruction and its
response, and the rubric instruction data is reviewed with. The preference recipe reuses
the rubric for each candidate response."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from roles.base import JsonRole
from roles.reviewer import Critique, Reviewer, Rubric, Score1to10


class InstructionPair(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    instruction: str = Field(min_length=10, max_length=600)
    # llama.cpp's schema-to-grammar unrolls maxLength into nested optional rules: 1,000 works,
    # 2,000 kills the engine (measured here with SmolLM2); 1,000 characters is ~250 tokens.
    response: str = Field(min_length=1, max_length=1000)


class InstructionWriter(JsonRole):
    """Writes a user's instruction and a good response to it, as one JSON object."""

    name = "generator"
    version = 1
    output = InstructionPair


class Instruction(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    instruction: str = Field(min_length=10, max_length=600)


class PromptWriter(JsonRole):
    """Writes only the instruction (the preference recipe answers it several times)."""

    name = "prompt_writer"
    version = 1
    output = Instruction


class ResponseReview(Rubric):
    """Helpfulness, correctness and instruction-following, each 1-10."""

    helpfulness: Score1to10
    correctness: Score1to10
    instruction_following: Score1to10
    critique: str = Critique


class ResponseReviewer(Reviewer):
    version = 1
    output = ResponseReview
