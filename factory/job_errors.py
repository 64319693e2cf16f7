"""Invalid job (and distill) files: the error type and its one-line message from pydantic's
validation errors: the field path, the rule, the value given."""
from __future__ import annotations

from pydantic import BaseModel, ValidationError

from factory.plugins import did_you_mean


class JobError(ValueError):
    """An invalid job file; str() is one line naming the field and what is allowed."""
    exit_code = 2  # bad input: nothing written (factory/cli.py's codes)


def _fields_at(loc: tuple, model: type[BaseModel]) -> list[str]:
    """The field names a spec allows at a location, for 'unknown field' messages."""
    for part in loc:
        if isinstance(part, int) or part not in model.model_fields:
            continue  # a list index or a dict key (a role name): same model below it
        annotation = model.model_fields[part].annotation
        inner = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)]
        inner = [a for a in inner if issubclass(a, BaseModel)]
        if not inner:
            return []
        model = inner[0]
    return list(model.model_fields)


def one_line_error(path: str, err: ValidationError, spec: type[BaseModel]) -> str:
    """One validation error as one line: the field path, the rule, the value given. An unknown
    field is named first, with the closest allowed one: a misspelt field also leaves the field
    it meant missing, and "num_sample: unknown field; ...; did you mean num_samples?" says both."""
    errors = err.errors()
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"]
    got = first.get("input")
    shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
    if first["type"] == "extra_forbidden":
        allowed = _fields_at(first["loc"][:-1], spec)
        msg, shown = f"unknown field; allowed here: {', '.join(allowed)}{did_you_mean(str(first['loc'][-1]), allowed)}", ""
    more = len(errors) - 1
    tail = f"; and {more} more error(s)" if more else ""
    return f"{path}: {where}: {msg}{shown}{tail}"


# Decision keys added with the gates and the likelihood signal (issue 11; legacy_fingerprints).
