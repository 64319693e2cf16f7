"""Garbage completions, as a broken backend or a confused model returns them (issue 15).

Each kind is `make(rng, good, schema) -> str`: `good` is the answer a well-behaved model
would give to the same request (a dict for a JSON role, text otherwise), `schema` the
request's JSON schema or None, so the garbage is aimed at the role: a valid review with
one score "7", a story with a lone surrogate in it. Everything comes from the caller's
seeded random.Random: the same seed gives the same garbage.
"""
from __future__ import annotations

import json
import random

# 1 MB: the size that made solver outputs run past 150 s in the fault-injection run.
HUGE_CHARS = 1_000_000
# 2,000 deep: what crashed the JSON parse (Python's json recursion limit is ~1,000).
DEEP = 2_000
# Kinds no role may use, whatever it parses: each must be a drop row.
ALWAYS_DROPPED = ("random_bytes", "lone_surrogates", "huge", "control_chars", "empty", "whitespace")

_WORDS = ("the", "cat", "sat", "on", "a", "warm", "mat", "and", "then", "ran", "to", "see", "big", "red", "ball")
_CONTROL = [chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0))] + \
    ["\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u2060", "\u2061", "\u2062", "\ufeff", "\ue000", "\U000e0001"]
_HTML = ("<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body>\n<center><h1>502 Bad "
         "Gateway</h1></center>\n<hr><center>nginx/1.25.3</center>\n<script>var x = {\"a\": 1};</script>\n"
         "</body></html>\n")


def _as_text(good, schema) -> str:
    return json.dumps(good) if schema else good


def _sample_object(good, schema) -> dict:
    """The object to mutate: the role's own answer, or a review-shaped one for a text role."""
    return dict(good) if schema else {"grammar": 7, "critique": "fine"}


def _field(rng: random.Random, obj: dict) -> str:
    return rng.choice(sorted(obj))


def _string_field(rng: random.Random, obj: dict) -> str:
    names = sorted(k for k, v in obj.items() if isinstance(v, str))
    return rng.choice(names) if names else _field(rng, obj)


def _surrogates(rng: random.Random, n: int) -> str:
    # Low surrogates only (U+DC00..U+DFFF, where surrogateescape puts undecodable bytes): a
    # high one followed by a low one is a valid pair once JSON-decoded, not garbage.
    return "".join(chr(rng.randrange(0xDC00, 0xE000)) for _ in range(n))


def random_bytes(rng, good, schema) -> str:
    # Bytes >= 0x80 that are not UTF-8 come back as lone surrogates (U+DC80..U+DCFF).
    return bytes(rng.randrange(256) for _ in range(rng.randint(64, 4_000))).decode("utf-8", "surrogateescape")


def lone_surrogates(rng, good, schema) -> str:
    if schema:  # json.dumps writes them as \udxxx escapes, which json.loads reads back
        obj = _sample_object(good, schema)
        name = _string_field(rng, obj)
        obj[name] = f"{obj[name]}{_surrogates(rng, rng.randint(1, 3))}"
        return json.dumps(obj)
    cut = rng.randrange(len(good) + 1)
    return good[:cut] + _surrogates(rng, rng.randint(1, 3)) + good[cut:]


def deep_json(rng, good, schema) -> str:
    depth = rng.choice((DEEP, DEEP, 100_000))
    if rng.random() < 0.5:
        return "[" * depth + "1" + "]" * depth
    return '{"a": ' * depth + "1" + "}" * depth


def huge(rng, good, schema) -> str:
    n = rng.choice((HUGE_CHARS, 250_000, 200_001))
    pattern = rng.choice(("nospace", "words", "boxed", "fence", "digits", "json", "equals"))
    if pattern == "json":
        obj = _sample_object(good, schema)
        obj[_string_field(rng, obj)] = "x" * n
        return json.dumps(obj)
    unit = {"nospace": "x", "words": "word ", "boxed": "\\boxed{", "fence": "```python\n",
            "digits": "100 ", "equals": "="}[pattern]
    return (unit * (n // len(unit) + 1))[:n]


def control_chars(rng, good, schema) -> str:
    n = rng.randint(30, 3_000)
    junk = "".join(rng.choice(_CONTROL) if rng.random() < 0.8 else rng.choice("ab 1") for _ in range(n))
    if schema:  # control characters inside a string field: valid JSON, unusable text
        obj = _sample_object(good, schema)
        obj[_string_field(rng, obj)] = junk
        return json.dumps(obj)
    return junk


def nan_infinity(rng, good, schema) -> str:
    obj = _sample_object(good, schema)
    obj[_field(rng, obj)] = rng.choice((float("nan"), float("inf"), float("-inf")))
    return json.dumps(obj)  # NaN / Infinity / -Infinity: Python's json writes and reads them


def wrong_types(rng, good, schema) -> str:
    obj = _sample_object(good, schema)
    name = _field(rng, obj)
    value = obj[name]
    if isinstance(value, bool):
        choices = ("yes", "true", 1, 0, None, [True])
    elif isinstance(value, int):
        choices = (str(value), True, float(value), None, [value], {"value": value})
    else:
        choices = (True, 7, None, [value], {"text": value})
    obj[name] = rng.choice(choices)
    return json.dumps(obj)


def partial_json(rng, good, schema) -> str:
    text = json.dumps(_sample_object(good, schema))
    return text[: rng.randrange(1, len(text))]


def empty(rng, good, schema) -> str:
    return ""


def whitespace(rng, good, schema) -> str:
    return "".join(rng.choice(" \n\t\r\u3000\u00a0") for _ in range(rng.randint(1, 200)))


def extra_keys(rng, good, schema) -> str:
    return json.dumps({**_sample_object(good, schema), rng.choice(("extra", "reasoning", "score")): 7})


def json_string(rng, good, schema) -> str:
    return json.dumps(_as_text(good, schema))  # an object (or a text) as one JSON string


def json_list(rng, good, schema) -> str:
    return json.dumps([_sample_object(good, schema)])


def null(rng, good, schema) -> str:
    return rng.choice(("null", "true", "7", '"yes"', "[]", "{}"))


def html_page(rng, good, schema) -> str:
    return _HTML


def hostile_program(rng, good, schema) -> str:
    """A program whose value is not a grade-school number (runs in the sandbox)."""
    value = rng.choice(("'1e99999'", "'Infinity'", "float('nan')", "10 ** 5000", "'x' * 10 ** 6", "[1, 2]"))
    return f"```python\ndef simple_math_problem():\n    return {value}\n```"


KINDS = {f.__name__: f for f in (random_bytes, lone_surrogates, deep_json, huge, control_chars, nan_infinity,
                                  wrong_types, partial_json, empty, whitespace, extra_keys, json_string, json_list,
                                  null, html_page, hostile_program)}


def plan(seed: int, n: int) -> list[tuple[str, int]]:
    """n (kind, seed) pairs: every kind in turn (so a job of 16+ completions sees them all),
    each with its own seed for the garbage it makes."""
    rng = random.Random(seed)
    names = list(KINDS)
    return [(names[i % len(names)], rng.randrange(2**32)) for i in range(n)]


def make(kind: str, seed: int, good, schema) -> str:
    return KINDS[kind](random.Random(seed), good, schema)
