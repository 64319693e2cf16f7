"""A solver completion that is JSON (issue 23 I): judged by its shape, never mined for numbers.

A solver writes prose ending in a final answer. A confused model (or a broken backend)
answers with JSON instead; number extraction then pulled a number out of it, and
{"story": 7, "answer": [1, 2]} was graded correct because its "2" matched the ground
truth. A JSON object counts only through its answer field, which must be a number or a
string that parses as one; any other object or array is a drop with its reason.
"""
from __future__ import annotations

import json
import math

from roles.answers import _to_fraction  # the exact-number parse answers_match itself uses


class _NotANumberConstant(ValueError):
    pass


def _refuse_constant(name: str):
    raise _NotANumberConstant(name)  # NaN / Infinity are not JSON


def json_answer(text: str) -> tuple[str | None, str | None]:
    """(answer, None) for a JSON object with a usable answer field; (None, reason) for JSON
    of the wrong shape; (None, None) when the text is not a JSON object or array (prose: the
    caller extracts its final answer as usual)."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[":
        return None, None
    try:
        data = json.loads(stripped, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # not JSON after all (JSONDecodeError is a ValueError)
        return None, None
    if isinstance(data, list):
        return None, f"a JSON array, not a solution with a final answer ({len(data)} items)"
    if not isinstance(data, dict):
        return None, None
    if "answer" not in data:
        keys = ", ".join(sorted(map(repr, data))[:5]) or "none"
        return None, f"a JSON object with no answer field (keys: {keys})"
    value = data["answer"]
    if isinstance(value, bool):  # a bool is an int to Python, not an answer
        return None, f"the answer field must be a number or a numeric string, got {json.dumps(value)}"
    if isinstance(value, int):
        return str(value), None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None, f"the answer field is not a finite number: {value}"
        return repr(value), None
    if isinstance(value, str) and _to_fraction(value) is not None:
        return value.strip(), None
    shown = json.dumps(value)[:80]
    kind = "string" if isinstance(value, str) else type(value).__name__.replace("NoneType", "null")
    return None, f"the answer field must be a number or a numeric string, got a {kind}: {shown}"
