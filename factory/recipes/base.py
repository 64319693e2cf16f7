"""A recipe is one class that declares everything about itself:

- `Options`: a pydantic model of its options (the job's `options:` mapping);
- `roles`: each role's class, default template and sampling, and the template variables
  the recipe provides to it (a user template that reads anything else fails at load);
- `decision`: its decision-rule defaults; `DecisionFields`: a pydantic model of the decision
  fields only it reads (TinyStories: its gates), accepted in its jobs' `decision:` beside the
  shared rule's (factory/job_spec.py DecisionRule); `score_range`: the range of its reviewers' overall;
- its seeds (`make_seed`, deterministic in job seed and index), its rule checks and the
  rule signals curation scores with, and `steps()`: the pipeline, a list of shared steps.

A user's recipe subclasses `Recipe` (or `TextRecipe`) in any file:
`recipe: my_recipes.py:Haiku` in a job, or an entry point in the group `factory.recipes`.
"""
from __future__ import annotations

import hashlib
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, ConfigDict

from factory.steps import TEXT_STEPS, SeedDrop

__all__ = ["NoOptions", "Recipe", "RoleDef", "SeedDrop", "TextRecipe", "rng_for"]


def rng_for(job_seed: int, index: int, salt: str = "seed") -> random.Random:
    # sha256, not hash(): Python salts str hashes per process, and seeds must survive restarts.
    digest = hashlib.sha256(f"{salt}:{job_seed}:{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class RoleDef:
    """One role of a recipe. make(template, recipe) -> the Role object."""

    make: Callable
    template: str
    provides: frozenset[str]
    sampling: dict = field(default_factory=dict)

    def defaults(self) -> dict:
        return {"template": self.template, "sampling": dict(self.sampling)}


class Recipe(ABC):
    name: str = ""
    description: str = ""
    Options: type[BaseModel] = NoOptions
    roles: dict[str, RoleDef] = {}
    # GRA-style: 3 reviewers, accept mean >= 7 and spread <= 1.5, reject mean < 5
    decision: dict = {"accept_mean": 7.0, "max_spread": 1.5, "reject_mean": 5.0}
    # The recipe's own decision fields, with their defaults: its jobs' `decision:` is the
    # shared rule plus these, and another recipe's job that gives one is an error. A field
    # here is left out of the fingerprint at its default (adding one changes no job).
    DecisionFields: type[BaseModel] = NoOptions
    score_range: tuple[float, float] = (1, 10)
    # The fewest reviewers per sample the recipe's steps can work with; 0: the recipe's gates
    # alone can decide (`reviewers: 0`). A recipe whose output IS the reviewers' ranking says 1.
    min_reviewers = 0
    # A generation stopped at max_tokens: "reject" (stage `truncated`) or "keep"; the job's
    # decision.truncated overrides it (factory/steps/truncation.py).
    truncated = "reject"
    sample_noun = "text"          # "same text as ...": what an exact duplicate repeats
    # export: "text" (one text column), "chat" (SFT `messages`), "pairs" (DPO prompt/chosen/rejected)
    export_kind = "text"
    distill_task: str | None = None  # the `factory distill` task that can read this recipe's jobs
    # Where the recipe's own name@version templates are, searched after the job's
    # templates_dir and before the built-in prompts/: "package:folder" (package data of an
    # installed plugin) or a folder relative to the file that defines the recipe class.
    templates: str | None = None
    source = "built-in"            # where the registry found it (set by the registry)
    database = None                # the run's database file (set by the pipeline; a recipe may read it)

    @classmethod
    def templates_location(cls) -> str | None:
        """`templates` resolved: "package:folder" as given, a folder as an absolute path
        (used to read files, never stored: rows keep the template's name@version)."""
        if not cls.templates:
            return None
        package, sep, _ = cls.templates.partition(":")
        if sep and package.replace(".", "").replace("_", "").isalnum():
            return cls.templates
        import inspect

        return str((Path(inspect.getfile(cls)).resolve().parent / cls.templates).resolve())

    def __init__(self, spec):
        self.spec = spec
        self.options = self.Options.model_validate(spec.options or {})

    # seeds
    @abstractmethod
    def make_seed(self, index: int) -> dict | SeedDrop:
        """The seed variables of one index; deterministic in (job seed, index)."""

    def capacity(self) -> int | None:
        """How many seeds exist (a seed file's lines); None when unbounded."""
        return None

    # the pipeline
    def steps(self) -> list:
        return [step() for step in TEXT_STEPS]

    def sample_of(self, seed: dict, parsed) -> tuple[str, dict | None]:
        """The generator's parsed output -> (the sample's text, its payload)."""
        return parsed.text, None

    def review_variables(self, seed: dict, sample: dict) -> dict:
        return {**seed, "text": sample["text"]}

    # rules
    def rule_checks(self, seed: dict, text: str) -> dict | None:
        """Model-free signals of one text, stored with the sample."""
        return None

    def checks_of(self, seed: dict, text: str, parsed) -> dict | None:
        """rule_checks with the generator's parsed output when the recipe's rule_checks takes
        it (`def rule_checks(self, seed, text, parsed)`: a JSON recipe reads its fields)."""
        import inspect

        if len(inspect.signature(self.rule_checks).parameters) >= 3:
            return self.rule_checks(seed, text, parsed)
        return self.rule_checks(seed, text)

    def rule_reject(self, checks: dict | None) -> tuple[str, str] | None:
        """(stage, reason) when a rule rejects the text before any review is paid for."""
        return None

    @classmethod
    def rule_signals(cls, checks: dict | None) -> list[float]:
        """Rule checks as scores in [0, 1] (1 = good): the quality score's `rules` part."""
        return []

    def rule_signal_rows(self, checks: dict | None) -> dict[str, tuple[float, dict]]:
        """Rule checks stored as `signals` rows: name -> (value, details); none by default."""
        return {}

    # probe
    @classmethod
    def probe_corruptions(cls) -> dict:
        """kind -> corruption `(text, rng, ctx) -> str | None` (factory/recipes/corruptions.py):
        what `factory probe` makes of accepted samples to see whether the judge scores them
        lower. The generic five; a recipe adds its own kinds."""
        from factory.recipes.corruptions import GENERIC

        return dict(GENERIC)

    @classmethod
    def probe_held_out(cls) -> dict:
        """Corruption kinds the probe reports apart as "held-out kinds": no threshold or
        weight of the recipe is chosen on them (factory/recipes/corruptions.py HELD_OUT)."""
        from factory.recipes.corruptions import HELD_OUT

        return dict(HELD_OUT)

    def generator_prompt(self, seed: dict) -> str:
        """The generator's rendered prompt for a seed (the probe's instruction_echo copies a
        line of it); "" when there is no generator template this seed alone can render."""
        from roles.templates import TemplateError

        role = (self.spec.roles or {}).get("generator")
        if role is None or not seed:
            return ""
        try:
            template = self.spec.template(role.template)
            return "\n".join(m["content"] for m in template.render(**seed))
        except (TemplateError, TypeError, KeyError, ValueError):
            return ""

    # export
    @classmethod
    def export_record(cls, row: dict) -> dict:
        """One accepted sample (a row of the accepted view) -> the recipe's export columns."""
        return {"text": row["text"]}

    @classmethod
    def describe(cls) -> dict:
        return {"name": cls.name, "description": cls.description, "source": cls.source,
                "roles": {n: r.template for n, r in cls.roles.items()},
                "options": list(cls.Options.model_fields), "axes": cls.review_axes()}

    @classmethod
    def review_axes(cls) -> list[str] | None:
        """The score axes of the reviewer role with its default template (`factory recipes`
        lists them), or None: no reviewer role, or one that needs a job to be built."""
        role = cls.roles.get("reviewer")
        if role is None:
            return None
        from roles.templates import load_template

        try:
            reviewer = role.make(load_template(role.template, recipe_templates=cls.templates_location()), None)
        except Exception:  # noqa: BLE001 - a plugin's make may need the recipe object; listing goes on
            return None
        return list(getattr(reviewer, "axes", ())) or None


class TextRecipe(Recipe):
    """A recipe whose sample is one generated text, reviewed against a rubric (the default steps)."""
