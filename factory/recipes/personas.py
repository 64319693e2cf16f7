"""Persona x task-type seeds (PersonaHub / Magpie style), shared by instruct and preference."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from factory.recipes.base import rng_for
from roles.templates import data_file


def shipped(name: str) -> list[str]:
    return [line.strip() for line in data_file(f"instruct/{name}").splitlines() if line.strip()]


class PersonaOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    personas: list[str] | None = Field(None, min_length=1, description="default: the 20 shipped personas")
    task_types: list[str] | None = Field(None, min_length=1, description="default: the 10 shipped task types")


def persona_seed(options: PersonaOptions, job_seed: int, index: int) -> dict:
    rng = rng_for(job_seed, index)
    return {"persona": rng.choice(options.personas or shipped("personas.txt")),
            "task_type": rng.choice(options.task_types or shipped("task_types.txt"))}


SEED_VARIABLES = frozenset({"persona", "task_type"})
