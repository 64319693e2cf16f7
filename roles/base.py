"""A role = a named, versioned template + a parse. Roles never touch DuckDB or Ray."""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from factory.templates import PromptTemplate, load_template


@dataclass(frozen=True)
class Drop:
    """Output we could not use: kept as a row with the raw text and the reason."""

    reason: str
    raw: str


class Role(ABC):
    name = "role"
    # Bump when parse() changes meaning; it enters the request key with the template hash.
    version = 1
    json_schema: dict | None = None

    def __init__(self, template: str):
        self.template: PromptTemplate = load_template(template)

    def variables(self, row: dict) -> dict:
        return row

    def messages(self, row: dict) -> tuple[dict, ...]:
        return self.template.render(**self.variables(row))

    @abstractmethod
    def parse(self, row: dict, text: str):
        """Completion text -> a typed result, or a Drop with the reason and the raw text."""


def parse_json_model(model: type[BaseModel], text: str) -> BaseModel | Drop:
    """JSON text -> a validated pydantic model, or a Drop naming what was wrong."""
    try:
        # strict=False: a raw newline inside a string is still JSON we can read (16 of 87
        # demo reviews broke on exactly that)
        data = json.loads(text, strict=False)
    except json.JSONDecodeError as err:
        return Drop(f"invalid JSON: {err.msg} at char {err.pos}", text)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        return Drop(f"invalid {model.__name__.lower()}: {where}: {first['msg']}", text)
