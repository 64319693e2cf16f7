"""A role = a named, versioned template + a parse. Roles never touch DuckDB or Ray, and
never import factory/ (factory imports roles, not the other way round).

A role whose output is JSON names a pydantic model in `output`: that model is the one
source of its JSON schema (constrained decoding), its parse and, for reviewers, its score
axes. The schema is derived from the model, never written twice.
"""
from __future__ import annotations

import json
import re
import unicodedata
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError

from roles.templates import PromptTemplate, load_template

# Bounds on what a parse reads: a model's answer is a few hundred tokens; a 1 MB string or
# 2,000-deep JSON is garbage, and must become a drop, not a RecursionError or a stall.
MAX_PARSE_CHARS = 200_000
MAX_JSON_DEPTH = 32
# Text that is mostly control, format or unassigned characters is garbage whatever its length
# (random bytes decoded with surrogateescape score ~60%; a real story with a stray tab, 0%).
MAX_UNPRINTABLE_SHARE = 0.2
# A reason names the field where a parse failed; a garbage key can be 1 MB long.
MAX_REASON_FIELD_CHARS = 80
# A lone surrogate, raw or as the six characters the store writes for one ("\udc80": stores/
# store.py escapes what UTF-8 cannot hold), so a completion and its cached copy parse alike.
_SURROGATE = re.compile(r"[\ud800-\udfff]|\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


@dataclass(frozen=True)
class Drop:
    """Output we could not use: kept as a row with the raw text and the reason."""

    reason: str
    raw: str


def schema_of(model: type[BaseModel]) -> dict:
    """The JSON schema a backend constrains decoding with: pydantic's schema without titles
    and descriptions (docstrings are for people; they would only change every request key),
    no extra keys, fields in declaration order (scores before the critique: a 135M model
    writes a score before it talks itself out of it)."""

    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in ("title", "description") or not isinstance(v, str)}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    schema = strip(model.model_json_schema())
    schema["additionalProperties"] = False
    return schema


def json_tokens_bound(model: type[BaseModel], spare: int = 16) -> int:
    """max_tokens that holds the longest answer of a flat output model's schema, counted
    in bytes (a byte-level BPE token is at least one byte): each field's key, its longest
    value (a string at its maxLength of ASCII characters, quoted), a separator and a space
    of whitespace the grammar allows, plus `spare`. A str field without maxLength has no
    bound: ValueError (give it one, e.g. Critique)."""
    total = 2 + spare  # the braces
    for name, field in model.model_fields.items():
        annotation, args = field.annotation, get_args(field.annotation)
        if get_origin(annotation) is Literal:
            value = max(len(json.dumps(a)) for a in args)
        elif annotation is bool:
            value = len("false")
        elif annotation in (int, float):
            value = 24
        elif annotation is str:
            lengths = [m.max_length for m in field.metadata if getattr(m, "max_length", None)]
            if not lengths:
                raise ValueError(f"{model.__name__}.{name}: a str without max_length has no token bound")
            value = min(lengths) + 2
        else:
            raise ValueError(f"{model.__name__}.{name}: no token bound for {annotation}")
        total += len(json.dumps(name)) + 1 + value + 2  # "key":value, and a space
    return total


class Role(ABC):
    name = "role"
    # Bump when parse() changes meaning; it enters the request key with the template hash.
    version = 1
    output: type[BaseModel] | None = None
    json_schema: dict | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("output") is not None:
            cls.json_schema = schema_of(cls.output)

    def __init__(self, template: str | PromptTemplate):
        self.template: PromptTemplate = template if isinstance(template, PromptTemplate) else load_template(template)

    def variables(self, row: dict) -> dict:
        return row

    def messages(self, row: dict) -> tuple[dict, ...]:
        return self.template.render(**self.variables(row))

    @abstractmethod
    def parse(self, row: dict, text: str):
        """Completion text -> a typed result, or a Drop with the reason and the raw text."""


class JsonRole(Role):
    """A role whose completion is its output model as JSON; parse returns the model."""

    def parse(self, row: dict, text: str):
        return parse_json_model(self.output, text)


def _depth(value, limit: int) -> int:
    depth, level = 0, [value]
    while level:
        depth += 1
        if depth > limit:
            return depth
        level = [v for x in level if isinstance(x, (dict, list))
                 for v in (x.values() if isinstance(x, dict) else x)]
    return depth


def unprintable_share(text: str) -> float:
    """Share of characters that are control, format, surrogate or unassigned code points."""
    if not text:
        return 0.0
    bad = sum(1 for ch in text if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") and ch not in "\n\t\r")
    return bad / len(text)


def text_problem(text: str) -> str | None:
    """Why a model's text cannot be used as text, or None: too long to scan, mostly control
    or non-printing characters, or a lone surrogate (bytes that were never UTF-8: no
    tokenizer, hash or Parquet file takes them, so they must not reach a sample)."""
    if len(text) > MAX_PARSE_CHARS:
        return f"output too long: {len(text)} characters (> {MAX_PARSE_CHARS})"
    bad = _SURROGATE.search(text)
    if bad:
        found = bad.group()
        code = ord(found) if len(found) == 1 else int(found[2:], 16)
        return f"not valid Unicode: lone surrogate U+{code:04X} at char {bad.start()}"
    share = unprintable_share(text)
    if share > MAX_UNPRINTABLE_SHARE:
        return f"mostly control or non-printing characters ({share:.0%})"
    return None


class _NotJson(ValueError):
    """NaN, Infinity and -Infinity: Python's json reads them, JSON has no such values."""


def _no_constants(name: str):
    raise _NotJson(f"{name} is not a JSON value")


def _strings(value):
    """Every string in parsed JSON (keys included), without recursion."""
    stack = [value]
    while stack:
        x = stack.pop()
        if isinstance(x, str):
            yield x
        elif isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)


def _inexact_literal(model: type[BaseModel], data) -> str | None:
    """pydantic matches Literal[1, ..., 10] by equality even when strict, so `true` and
    `7.0` pass as 1 and 7; a score must be a JSON integer. Top-level fields only (rubrics
    and role outputs are flat)."""
    if not isinstance(data, dict):
        return None
    for name, field in model.model_fields.items():
        args = get_args(field.annotation) if get_origin(field.annotation) is Literal else ()
        if args and all(type(a) is int for a in args) and name in data and type(data[name]) is not int:
            return f"{name}: expected an integer, got {json.dumps(data[name])[:MAX_REASON_FIELD_CHARS]}"
    return None


def parse_json_model(model: type[BaseModel], text: str) -> BaseModel | Drop:
    """JSON text -> a strictly validated pydantic model ("7" is not a number, "yes" not a
    boolean, NaN not JSON), with usable text in every string, or a Drop naming what was wrong."""
    label = model.__name__.lower()
    if len(text) > MAX_PARSE_CHARS:
        return Drop(f"output too long to parse: {len(text)} characters (> {MAX_PARSE_CHARS})", text)
    try:
        # strict=False: a raw newline inside a string is still JSON we can read (16 of 87
        # demo reviews broke on exactly that)
        data = json.loads(text, strict=False, parse_constant=_no_constants)
    except json.JSONDecodeError as err:
        return Drop(f"invalid JSON: {err.msg} at char {err.pos}", text)
    except _NotJson as err:
        return Drop(f"invalid JSON: {err}", text)
    except RecursionError:
        return Drop(f"invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels", text)
    if _depth(data, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        return Drop(f"invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels", text)
    try:
        parsed = model.model_validate(data, strict=True)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])[:MAX_REASON_FIELD_CHARS] or "(top level)"
        return Drop(f"invalid {label}: {where}: {first['msg']}", text)
    inexact = _inexact_literal(model, data)
    if inexact:
        return Drop(f"invalid {label}: {inexact}", text)
    for value in _strings(data):
        problem = text_problem(value)
        if problem:
            return Drop(f"invalid {label}: a string field: {problem}", text)
    return parsed
