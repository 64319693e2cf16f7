"""What a recipe gives the pipeline: deterministic seeds, its roles, its rule checks."""
from __future__ import annotations

import hashlib
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass


def rng_for(job_seed: int, index: int, salt: str = "seed") -> random.Random:
    # sha256, not hash(): Python salts str hashes per process, and seeds must survive restarts.
    digest = hashlib.sha256(f"{salt}:{job_seed}:{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


@dataclass(frozen=True)
class SeedDrop:
    """A seed that could not be made (a malformed line in a seed file): a drop row."""

    reason: str
    raw: str


class Recipe(ABC):
    name: str

    def __init__(self, spec):
        self.spec = spec

    @abstractmethod
    def make_seed(self, index: int) -> dict | SeedDrop:
        """The seed variables of one index; deterministic in (job seed, index)."""

    def capacity(self) -> int | None:
        """How many seeds exist (a seed file's lines); None when unbounded."""
        return None


class TextRecipe(Recipe):
    """A recipe whose sample is one generated text, reviewed against a rubric."""

    @abstractmethod
    def rule_checks(self, seed: dict, text: str) -> dict:
        """Model-free signals of one text, stored with the sample."""

    def rule_reject(self, checks: dict) -> tuple[str, str] | None:
        """(stage, reason) when a rule rejects the text before any review is paid for."""
        return None

    def review_variables(self, seed: dict, text: str) -> dict:
        return {**seed, "text": text}
