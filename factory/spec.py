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
NOT_FINGERPRINTED = {"num_samples", "db", "name", "curation"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SamplingParams(Strict):
    temperature: float = Field(0.8, ge=0.0, le=2.0, description="0 is greedy")
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    top_k: int = Field(40, ge=0, description="0 disables top-k")
    max_tokens: int = Field(256, ge=1, le=8192)
    repeat_penalty: float = Field(1.1, ge=0.5, le=2.0)


class EndpointSpec(Strict):
    """Where a remote backend (openai) lives. The key itself never enters the job or the db."""

    base_url: str = Field(description="e.g. http://127.0.0.1:8000/v1")
    api_key_env: str | None = Field(None, description="environment variable holding the API key")
    max_concurrency: int = Field(4, ge=1, le=1024, description="requests in flight")
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(5, ge=0, le=20, description="retries on 429, 5xx and connection errors, with backoff")
    schema_format: Literal["json_schema", "json_object"] = Field(
        "json_schema", description="json_schema: OpenAI / vLLM / SGLang; json_object: llama.cpp's server")
    send_extra_sampling: bool = Field(True, description="send top_k and repeat_penalty (vLLM, llama.cpp accept them)")


class ModelRef(Strict):
    backend: str = "llamacpp"
    model: str = "smollm2-135m-instruct-q4_1"
    endpoint: EndpointSpec | None = None
    tensor_parallel_size: int = Field(1, ge=1, le=64, description="vllm: GPUs one engine spans")


class RoleSpec(Strict):
    backend: str = Field("llamacpp", description="registered backend name: llamacpp, openai")
    model: str = Field("smollm2-135m-instruct-q4_1", description="model name the backend knows")
    endpoint: EndpointSpec | None = Field(None, description="for remote backends")
    tensor_parallel_size: int = Field(1, ge=1, le=64, description="vllm: GPUs one engine spans")
    template: str = Field(description="prompt template name@version under prompts/")
    sampling: SamplingParams = SamplingParams()
    max_tokens_budget: int | None = Field(None, ge=1, description="hard cap on this role's tokens in this job")
    pool: list[ModelRef] | None = Field(
        None, min_length=1, description="reviewer only: reviewer k uses pool[k % len(pool)] (GRA's pool of small models)")
    exclude_generator_model: bool = Field(
        False, description="reviewer only: draw each reviewer from the pool, never the model that generated the sample")

    def model_ref(self) -> ModelRef:
        return ModelRef(backend=self.backend, model=self.model, endpoint=self.endpoint,
                        tensor_parallel_size=self.tensor_parallel_size)


class DecisionRule(Strict):
    """accept if mean >= accept_mean and spread <= max_spread; reject if mean < reject_mean;
    otherwise ask the Adjudicator. Means are over reviewers of each review's overall score
    (1-10 for TinyStories and math, the additive 0-5 for textbooks)."""

    accept_mean: float = Field(7.0, ge=0, le=10)
    max_spread: float = Field(1.5, ge=0, le=10)
    reject_mean: float = Field(5.0, ge=0, le=10)
    max_out_of_vocabulary: float | None = Field(
        None, ge=0, le=1, description="TinyStories: reject (stage 'vocabulary') above this share of words outside the vocabulary"
    )

    @model_validator(mode="after")
    def _ordered(self) -> "DecisionRule":
        if self.reject_mean > self.accept_mean:
            raise ValueError("reject_mean must be <= accept_mean")
        return self


class TextbookOptions(Strict):
    topics_file: str | None = Field(
        None, description="a topic a line, or JSONL with 'topic' and an optional 'extract'; default: the shipped list")
    audiences: list[str] | None = Field(None, min_length=1, description="default: the four shipped audiences")
    styles: list[str] | None = Field(None, min_length=1, description="default: the four shipped styles")
    min_words: int = Field(120, ge=1, description="shorter texts are dropped")


class MathOptions(Strict):
    source: Literal["builtin", "file", "generated"] = Field(
        "builtin", description="builtin: the word-problem generator; file: a GSM8K-format JSONL; "
        "generated: the problem_writer writes a new problem after each seed problem")
    seed_file: str | None = Field(None, description="GSM8K-format JSONL (question, answer ending in '#### n')")
    families: list[str] | None = Field(None, min_length=1, description="builtin families; default: all")
    max_steps: int = Field(4, ge=1, le=6, description="builtin difficulty: 1..max_steps arithmetic steps")
    programs: int = Field(3, ge=1, le=16, description="programs sampled per problem; their majority decides "
                          "where there is no ground truth")

    @model_validator(mode="after")
    def _needs_file(self) -> "MathOptions":
        if self.source == "file" and not self.seed_file:
            raise ValueError("source 'file' needs seed_file")
        if self.source == "builtin" and self.seed_file:
            raise ValueError("seed_file is read only when source is 'file' or 'generated'")
        if self.families:
            from factory.recipes.math_problems import FAMILIES

            unknown = [f for f in self.families if f not in FAMILIES]
            if unknown:
                raise ValueError(f"unknown family {unknown[0]!r}; families: {', '.join(FAMILIES)}")
        return self


class ExecutionSpec(Strict):
    executor: Literal["ray", "local"] = Field("ray", description="ray: role actors in Ray; local: in this process")
    engines: int | Literal["auto"] = Field(
        "auto", description="model engines (Ray actors); auto = one per CPU of the cluster"
    )
    threads_per_engine: int = Field(1, ge=1, le=64, description="2 cores: two 1-thread engines ~140 tok/s vs ~118 for one 2-thread")
    gpus_per_engine: float = Field(0, ge=0, le=64, description="Ray GPUs per engine actor (vllm: = tensor_parallel_size)")
    batch_size: int = Field(8, ge=1, le=4096, description="seeds per committed batch")

    @model_validator(mode="after")
    def _engines(self) -> "ExecutionSpec":
        if self.engines != "auto" and self.engines < 1:
            raise ValueError("engines must be >= 1 or 'auto'")
        return self


class BenchmarkFile(Strict):
    path: str = Field(description="JSONL or Parquet file of benchmark rows")
    field: str | None = Field(None, description="text field; default: 'question' if present (GSM8K), else 'text'")
    name: str | None = Field(None, description="default: the file name")


class QualityWeights(Strict):
    """Weights of the composite quality score's components (each in [0, 1]); a component a
    sample does not have (no adjudication, no verifier) is left out and the rest renormalized."""

    reviewers: float = Field(0.4, ge=0)
    adjudicator: float = Field(0.15, ge=0)
    verifier: float = Field(0.25, ge=0)
    rules: float = Field(0.2, ge=0)
    duplicate_penalty: float = Field(1.0, ge=0, le=1, description="score x (1 - penalty) for a removed duplicate")


class CurationSpec(Strict):
    near_threshold: float = Field(0.8, gt=0, le=1, description="MinHash Jaccard at or above which texts are near duplicates")
    shingle_words: int = Field(3, ge=1, le=13, description="word n-gram size of the MinHash shingles")
    num_perm: int = Field(128, ge=16, le=1024)
    semantic: bool = Field(True, description="embedding dedup with all-MiniLM-L6-v2")
    semantic_threshold: float = Field(0.95, gt=0, le=1, description="cosine similarity at or above which texts are duplicates")
    decontaminate: list[BenchmarkFile] = Field(default_factory=list)
    contamination_ngrams: list[int] = Field(default_factory=lambda: [8, 13], min_length=1)
    weights: QualityWeights = QualityWeights()


class JobSpec(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    recipe: Literal["tinystories", "textbook", "math"] = "tinystories"
    num_samples: int = Field(ge=1, le=10_000_000)
    seed: int = Field(0, ge=0)
    reviewers: int = Field(3, ge=1, le=16)
    roles: dict[str, RoleSpec] = Field(default_factory=dict, description="per role; the recipe fills what is left out")
    decision: DecisionRule = DecisionRule()
    textbook: TextbookOptions | None = None
    math: MathOptions | None = None
    execution: ExecutionSpec = ExecutionSpec()
    max_tokens_budget: int | None = Field(None, ge=1, description="hard cap on all roles' tokens in this job")
    curation: CurationSpec = CurationSpec()
    db: str = Field("factory.duckdb", description="DuckDB file; --db overrides")

    @model_validator(mode="before")
    @classmethod
    def _recipe_defaults(cls, data):
        """Fill each role and the decision rule from the recipe's defaults, so the spec that
        is fingerprinted and recorded says everything that was run."""
        if not isinstance(data, dict):
            return data
        from factory.recipes.defaults import RECIPE_DEFAULTS

        recipe = data.get("recipe", "tinystories")
        if recipe not in RECIPE_DEFAULTS:
            return data  # the Literal check names the allowed recipes
        defaults = RECIPE_DEFAULTS[recipe]
        roles = data.get("roles") or {}
        if not isinstance(roles, dict):
            return data
        unknown = sorted(set(roles) - set(defaults["roles"]))
        if unknown:
            raise ValueError(f"roles.{unknown[0]}: not a role of recipe {recipe}; its roles: "
                             f"{', '.join(defaults['roles'])}")
        merged = {}
        for role, default in defaults["roles"].items():
            given = roles.get(role) or {}
            if not isinstance(given, dict):
                merged[role] = given
                continue
            sampling = {**default["sampling"], **(given.get("sampling") or {})}
            merged[role] = {**default, **given, "sampling": sampling}
        data = {**data, "roles": merged}
        if isinstance(data.get("decision", {}), dict):
            data["decision"] = {**defaults["decision"], **(data.get("decision") or {})}
        for other in ("textbook", "math"):
            if other != recipe and data.get(other) is not None:
                raise ValueError(f"{other}: options of recipe {other}, but this job's recipe is {recipe}")
        if recipe in ("textbook", "math") and data.get(recipe) is None:
            data[recipe] = {}
        return data

    def role(self, name: str) -> RoleSpec:
        return self.roles[name]

    def canonical(self) -> dict:
        """The spec that names the job: without what can change between runs of the same
        job (size, db, budgets, connection settings)."""
        data = self.model_dump(mode="json", exclude=NOT_FINGERPRINTED | {"max_tokens_budget"})
        for role in data["roles"].values():
            role.pop("max_tokens_budget", None)
            role.pop("endpoint", None)
            for ref in role.get("pool") or []:
                ref.pop("endpoint", None)
        return data

    @property
    def fingerprint(self) -> str:
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class JobError(ValueError):
    """An invalid job file; str() is one line naming the field and what is allowed."""


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
    """The first validation error as one line: the field path, the rule, the value given."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"]
    got = first.get("input")
    shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
    if first["type"] == "extra_forbidden":
        msg, shown = f"unknown field; allowed here: {', '.join(_fields_at(first['loc'][:-1], spec))}", ""
    more = len(err.errors()) - 1
    tail = f"; and {more} more error(s)" if more else ""
    return f"{path}: {where}: {msg}{shown}{tail}"


def parse_job(data: dict, source: str = "<job>") -> JobSpec:
    if not isinstance(data, dict):
        raise JobError(f"{source}: (top level): expected a mapping of job fields")
    try:
        return JobSpec.model_validate(data)
    except ValidationError as err:
        raise JobError(one_line_error(source, err, JobSpec)) from None


def read_yaml(path: str | Path, kind: str = "job"):
    """A spec file's YAML; a missing file or a syntax error is one line naming the line."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise JobError(f"{path}: no such {kind} file") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        raise JobError(f"{path}: {where}: not valid YAML ({getattr(err, 'problem', err)})") from None


def load_job(path: str | Path) -> JobSpec:
    return parse_job(read_yaml(path), str(path))
