"""The job spec: YAML in, a validated pydantic model out, and the fingerprint that names it.

Unknown fields are errors everywhere (extra="forbid") so that a typo never silently
falls back to a default.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# Fields that do not change what any one sample is: growing num_samples extends the same
# job, and the same job may live in another database file.
NOT_FINGERPRINTED = {"num_samples", "db", "name"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SamplingParams(Strict):
    temperature: float = Field(0.8, ge=0.0, le=2.0, description="0 is greedy")
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    top_k: int = Field(40, ge=0, description="0 disables top-k")
    max_tokens: int = Field(256, ge=1, le=8192)
    repeat_penalty: float = Field(1.1, ge=0.5, le=2.0)


class RoleSpec(Strict):
    backend: str = Field("llamacpp", description="registered backend name, e.g. llamacpp")
    model: str = Field("smollm2-135m-instruct-q4_1", description="model name the backend knows")
    template: str = Field(description="prompt template name@version under prompts/")
    sampling: SamplingParams = SamplingParams()


class DecisionRule(Strict):
    """accept if mean >= accept_mean and spread <= max_spread; reject if mean < reject_mean;
    otherwise ask the Adjudicator. Means are over reviewers of each review's mean axis score."""

    accept_mean: float = Field(7.0, ge=1, le=10)
    max_spread: float = Field(1.5, ge=0, le=9)
    reject_mean: float = Field(5.0, ge=1, le=10)
    max_out_of_vocabulary: float | None = Field(
        None, ge=0, le=1, description="reject (stage 'rule') above this share of words outside the vocabulary"
    )

    @model_validator(mode="after")
    def _ordered(self) -> "DecisionRule":
        if self.reject_mean > self.accept_mean:
            raise ValueError("reject_mean must be <= accept_mean")
        return self


class Roles(Strict):
    generator: RoleSpec = RoleSpec(template="tinystories/generator@1", sampling=SamplingParams(max_tokens=300))
    reviewer: RoleSpec = RoleSpec(
        template="tinystories/reviewer@1", sampling=SamplingParams(temperature=0.7, max_tokens=160)
    )
    adjudicator: RoleSpec = RoleSpec(
        template="tinystories/adjudicator@1", sampling=SamplingParams(temperature=0.2, max_tokens=120)
    )


class ExecutionSpec(Strict):
    executor: Literal["ray", "local"] = Field("ray", description="ray: role actors in Ray; local: in this process")
    engines: int | Literal["auto"] = Field(
        "auto", description="model engines (Ray actors); auto = one per CPU of the cluster"
    )
    threads_per_engine: int = Field(1, ge=1, le=64, description="2 cores: two 1-thread engines ~140 tok/s vs ~118 for one 2-thread")
    batch_size: int = Field(8, ge=1, le=4096, description="seeds per committed batch")

    @model_validator(mode="after")
    def _engines(self) -> "ExecutionSpec":
        if self.engines != "auto" and self.engines < 1:
            raise ValueError("engines must be >= 1 or 'auto'")
        return self


class JobSpec(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    recipe: Literal["tinystories"] = "tinystories"
    num_samples: int = Field(ge=1, le=10_000_000)
    seed: int = Field(0, ge=0)
    reviewers: int = Field(3, ge=1, le=16)
    roles: Roles = Roles()
    decision: DecisionRule = DecisionRule()
    execution: ExecutionSpec = ExecutionSpec()
    db: str = Field("factory.duckdb", description="DuckDB file; --db overrides")

    def canonical(self) -> dict:
        return self.model_dump(mode="json", exclude=NOT_FINGERPRINTED)

    @property
    def fingerprint(self) -> str:
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class JobError(ValueError):
    """An invalid job file; str() is one line naming the field and what is allowed."""


def _fields_at(loc: tuple) -> list[str]:
    """The field names a spec allows at a location, for 'unknown field' messages."""
    model: type[BaseModel] = JobSpec
    for part in loc:
        annotation = model.model_fields[part].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _one_line(path: str, err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"]
    got = first.get("input")
    shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
    if first["type"] == "extra_forbidden":
        msg, shown = f"unknown field; allowed here: {', '.join(_fields_at(first['loc'][:-1]))}", ""
    more = len(err.errors()) - 1
    tail = f"; and {more} more error(s)" if more else ""
    return f"{path}: {where}: {msg}{shown}{tail}"


def parse_job(data: dict, source: str = "<job>") -> JobSpec:
    if not isinstance(data, dict):
        raise JobError(f"{source}: (top level): expected a mapping of job fields")
    try:
        return JobSpec.model_validate(data)
    except ValidationError as err:
        raise JobError(_one_line(source, err)) from None


def load_job(path: str | Path) -> JobSpec:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise JobError(f"{path}: no such job file") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        raise JobError(f"{path}: {where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    return parse_job(data, str(path))
