"""The job spec as data: the validated pydantic model of a job and the fingerprint that
names it. It imports nothing above the core (docs/design-notes.md, "Layers"): reading a job
against its recipe (defaults filled in, options checked, load-time checks) is
factory/spec.py's parse_job, which sets what this model keeps of the recipe (its templates'
location, its decision defaults) on the spec it returns.

Unknown fields are errors everywhere (extra="forbid") so that a typo never silently
falls back to a default.
"""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SerializeAsAny, model_validator

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
    backend: str = Field("llamacpp", description="a backend name (llamacpp, openai, vllm), a plugin's entry point "
                         "name, or module:Class / path/file.py:Class")
    model: str = Field("smollm2-135m-instruct-q4_1", description="model name the backend knows")
    endpoint: EndpointSpec | None = Field(None, description="for remote backends")
    tensor_parallel_size: int = Field(1, ge=1, le=64, description="vllm: GPUs one engine spans")
    wrong_rate: float = Field(0.0, ge=0, le=1, description="reference backend, solver roles: the share of problems "
                              "whose solutions carry one deliberate arithmetic slip (to measure what verification "
                              "buys); 0 (default) is always right")

    @model_validator(mode="after")
    def _wrong_rate_only_for_reference(self) -> "ModelRef":
        if self.wrong_rate and self.backend != "reference":
            raise ValueError(f"wrong_rate is read only by backend reference (the scripted teacher), not {self.backend!r}")
        return self

    def model_ref(self) -> "ModelRef":
        return ModelRef(backend=self.backend, model=self.model, endpoint=self.endpoint,
                        tensor_parallel_size=self.tensor_parallel_size, wrong_rate=self.wrong_rate)


class RoleSpec(ModelRef):
    """A role's model (a ModelRef, or a pool of them), its template and its sampling."""

    template: str = Field(description="name@version (templates_dir, then the built-in prompts/) or a .jinja path "
                          "relative to the job file")
    sampling: SamplingParams = SamplingParams()
    max_tokens_budget: int | None = Field(None, ge=1, description="hard cap on this role's tokens in this job")
    pool: list[ModelRef] | None = Field(
        None, min_length=1, description="GRA's pool of small models: each call draws one, deterministically from "
        "(job seed, seed index, role, slot); the k reviewers of one sample are distinct models while the pool allows")
    exclude_generator_model: bool = Field(
        False, description="the model that wrote a sample never reviews or adjudicates it")

    def models(self) -> list[ModelRef]:
        return list(self.pool) if self.pool else [self.model_ref()]


class DecisionRule(Strict):
    """accept if mean >= accept_mean and spread <= max_spread; reject if mean < reject_mean;
    otherwise ask the Adjudicator. Means are over reviewers of each review's overall score
    (1-10 for TinyStories and math, the additive 0-5 for textbooks). The fields every recipe
    reads; a recipe adds the ones only it reads (Recipe.DecisionFields: TinyStories' gates),
    and a job's rule is both (recipe_decision_rule)."""

    accept_mean: float = Field(7.0, ge=0, le=10)
    max_spread: float = Field(1.5, ge=0, le=10)
    reject_mean: float = Field(5.0, ge=0, le=10)
    # Gates before review (issue 11). Each new field enters the fingerprint; at its default
    # it is left out of legacy_fingerprints, so databases made before continue their jobs.
    min_likelihood: float | None = Field(
        None, le=0, description="reject (stage 'likelihood') below this mean natural-log probability per token of "
        "the text under the reference model; None: off (the signal is still stored where the model can give it)")
    likelihood_model: ModelRef | None = Field(
        None, description="the likelihood's reference model (a llamacpp model); default: the generator's model")
    truncated: Literal["reject", "keep"] = Field(
        "reject", description="a generation stopped at max_tokens: reject (stage 'truncated') or keep; the recipe "
        "declares the default")
    text_gates: Literal["reject", "signal"] = Field(
        "reject", description="TinyStories: the text gates (unfinished, prompt_echo, meta_narration, "
        "repeated_sentence, loop) reject, or only record their checks (signal); an unfinished story is kept "
        "under truncated: keep as well")
    review_score: Literal["sampled", "expected"] = Field(
        "sampled", description="what a review's overall score is: sampled (the rubric's overall of the written "
        "scores) or expected (the mean over integer axes of each score's expectation under the reviewer model's "
        "token probabilities, G-Eval; needs a reviewer backend with logprobs: llamacpp; costs a forward pass "
        "per review)")
    score: Literal["reviewers", "likelihood", "likelihood_rules", "likelihood_zlib"] = Field(
        "reviewers", description="the decision score (what the rule reads and `factory probe` ranks): reviewers "
        "(the reviewers' mean against accept_mean / reject_mean / max_spread, the Adjudicator between); "
        "likelihood (the mean log-likelihood per token); likelihood_rules (the likelihood + 0.5 x the mean of the "
        "recipe's rule signals, factory/decide.py); likelihood_zlib (the text's total log-likelihood over its zlib-"
        "compressed size in nats: repetition is not rewarded). With either likelihood score a sample that passes every gate is "
        "accepted (stage 'gates'), so it needs min_likelihood; reviews are still made and stored but do not decide")

    min_reviews: int | None = Field(
        None, ge=1, le=16, description="the quorum: a sample with fewer valid (parsed) reviews than this is never "
        "decided on them: it is dropped (stage 'quorum') with the count in its reason, or see replacement_reviews "
        "and below_quorum; at most `reviewers`. None (default): one valid review suffices")
    replacement_reviews: int = Field(
        0, ge=0, le=16, description="with min_reviews: a sample below the quorum gets up to this many more reviews, "
        "each a new reviewer slot (so a new request seed), asked until the quorum is met or they are spent")
    below_quorum: Literal["drop", "adjudicator"] = Field(
        "drop", description="with min_reviews: a sample still below the quorum after its replacement reviews is "
        "dropped (stage 'quorum') or decided by the Adjudicator (its verdict's reason says it was below quorum)")

    @model_validator(mode="after")
    def _ordered(self) -> "DecisionRule":
        if self.reject_mean > self.accept_mean:
            raise ValueError("reject_mean must be <= accept_mean")
        if self.score != "reviewers" and self.min_likelihood is None:
            raise ValueError(f"score: {self.score} accepts what passes every gate: set min_likelihood (the "
                             "likelihood below which a sample is rejected), or use score: reviewers")
        return self


class ExecutionSpec(Strict):
    executor: Literal["ray", "local"] = Field("ray", description="ray: role actors in Ray; local: in this process")
    engines: int | Literal["auto"] = Field(
        "auto", description="model engines (Ray actors); auto = one per CPU of the cluster"
    )
    threads_per_engine: int = Field(1, ge=1, le=64, description="2 cores: two 1-thread engines ~140 tok/s vs ~118 for one 2-thread")
    gpus_per_engine: float = Field(0, ge=0, le=64, description="Ray GPUs per engine actor (vllm: = tensor_parallel_size)")
    batch_size: int = Field(8, ge=1, le=4096, description="seeds per committed batch")
    slots_per_engine: int = Field(
        1, ge=1, le=64, description="requests a llamacpp engine decodes together (llama.cpp batch API); "
        "1 = one at a time. >1: a text may depend on which requests shared its batch (the cache keeps exactly-once)")
    batches_in_flight: int = Field(
        1, ge=1, le=64, description="batches whose steps run at once (driver threads; rows still commit a batch "
        "at a time, in order): an engine has requests queued while a batch is written. 1 = one batch at a time")

    @model_validator(mode="after")
    def _engines(self) -> "ExecutionSpec":
        if self.engines != "auto" and self.engines < 1:
            raise ValueError("engines must be >= 1 or 'auto'")
        return self


class BenchmarkFile(Strict):
    path: str = Field(description="JSONL or Parquet file of benchmark rows")
    field: str | None = Field(None, description="text field; default: 'question' if present (GSM8K), else 'text'")
    name: str | None = Field(None, description="default: the file name")


class CorpusFile(Strict):
    """An existing corpus a job is deduped against (curation.against_corpus); never changed."""

    path: str = Field(description="JSONL or Parquet file of texts already in the corpus")
    field: str = Field("text", min_length=1, description="the text field of each row")
    name: str | None = Field(None, description="default: the file name")


class QualityWeights(Strict):
    """Weights of the composite quality score's components (each in [0, 1]); a component a
    sample does not have (no adjudication, no verifier) is left out and the rest renormalized."""

    reviewers: float = Field(0.4, ge=0)
    adjudicator: float = Field(0.15, ge=0)
    verifier: float = Field(0.25, ge=0)
    rules: float = Field(0.2, ge=0)
    likelihood: float = Field(0.3, ge=0, description="the likelihood signal, mapped to [0, 1] "
                              "(factory/curation/quality.py); left out where a sample has none")
    duplicate_penalty: float = Field(1.0, ge=0, le=1, description="score x (1 - penalty) for a removed duplicate")


class CurationSpec(Strict):
    near_threshold: float = Field(0.8, gt=0, le=1, description="MinHash Jaccard at or above which texts are near duplicates")
    shingle_words: int = Field(3, ge=1, le=13, description="word n-gram size of the MinHash shingles")
    num_perm: int = Field(128, ge=16, le=1024)
    semantic: bool = Field(True, description="embedding dedup with all-MiniLM-L6-v2")
    semantic_threshold: float = Field(0.95, gt=0, le=1, description="cosine similarity at or above which texts are duplicates")
    decontaminate: list[BenchmarkFile] = Field(default_factory=list)
    contamination_ngrams: list[int] = Field(default_factory=lambda: [8, 13], min_length=1)
    semantic_contamination: bool = Field(True, description="also flag samples whose all-MiniLM-L6-v2 embedding is "
                                         "close to a benchmark row's (paraphrases that share no n-gram)")
    contamination_similarity: float = Field(0.80, gt=0, le=1, description="cosine similarity at or above which a "
                                            "sample is flagged as a paraphrase of a benchmark row")
    weights: QualityWeights = QualityWeights()
    against_jobs: list[str] = Field(default_factory=list, description="job names or fingerprints in the same "
                                    "database: a sample duplicating one of their accepted samples (exact, near, "
                                    "or semantic when on) is removed; a name means every other job of that name")
    against_corpus: list[CorpusFile] = Field(default_factory=list, description="JSONL or Parquet files: a sample "
                                             "duplicating one of their rows is removed")


class JobSpec(Strict):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.-]+$")
    recipe: str = Field(min_length=1, max_length=1000, description="a recipe name (`factory recipes` lists them), "
                        "module:Class, or path/file.py:Class relative to the job file")
    num_samples: int = Field(ge=1, le=10_000_000)
    seed: int = Field(0, ge=0)
    reviewers: int = Field(3, ge=0, le=16, description="reviewers per sample; 0: no model review, every sample "
                           "that passes the recipe's gates (math: the verifier) is accepted (stage 'gates')")
    roles: dict[str, RoleSpec] = Field(default_factory=dict, description="per role; the recipe fills what is left out")
    # the shared rule, or its recipe's (recipe_decision_rule): dumped with the recipe's fields
    decision: SerializeAsAny[DecisionRule] = DecisionRule()
    options: dict | None = Field(None, description="the recipe's options (its Options model checks them)")
    templates_dir: str | None = Field(None, description="a folder searched for name@version templates before the "
                                      "built-in prompts/ (relative to the job file)")
    execution: ExecutionSpec = ExecutionSpec()
    max_tokens_budget: int | None = Field(None, ge=1, description="hard cap on all roles' tokens in this job")
    curation: CurationSpec = CurationSpec()
    db: str = Field("factory.duckdb", description="DuckDB file; --db overrides")
    # Where the job file lives: relative template, recipe and backend paths are read from there.
    _base_dir: str | None = PrivateAttr(None)
    # The user files' content hashes when the job was loaded (user_files): a file edited
    # during a run does not change the running job's fingerprint.
    _files: dict | None = PrivateAttr(None)
    # What the spec keeps of its recipe, set by factory/spec.py's parse_job (the recipe is
    # found there, a layer above): where it keeps its templates (Recipe.templates_location,
    # "" for none) and the decision rule it declares (recipe_decision_defaults, read by
    # legacy_fingerprints). A spec made by model_copy or unpickled keeps them.
    _recipe_templates: str | None = PrivateAttr(None)
    _recipe_decision: dict | None = PrivateAttr(None)

    def role(self, name: str) -> RoleSpec:
        return self.roles[name]

    @property
    def base_dir(self) -> str | None:
        return self._base_dir

    def recipe_reference(self) -> str:
        """The recipe as the store records it (jobs.recipe): a file reference relative to the
        job file's folder (`lib/facts.py:Facts`; an absolute one in the YAML is made relative,
        `../shared/facts.py:Facts`), so no row holds a path of the machine that ran it; readers
        look it up from their folder, then the database's (stores/jobs.py loadable_recipe).
        Not part of the fingerprint: the canonical spec keeps the YAML's `recipe` as written."""
        import os

        target, sep, attr = self.recipe.rpartition(":")
        if sep and target.endswith(".py") and self._base_dir and Path(target).expanduser().is_absolute():
            relative = os.path.relpath(Path(target).expanduser().resolve(), Path(self._base_dir).resolve())
            return f"{Path(relative).as_posix()}:{attr}"
        return self.recipe

    def with_recipe(self, templates: str | None, decision: dict) -> "JobSpec":
        """This spec, knowing its recipe's templates location and declared decision rule
        (parse_job calls it with the recipe it found)."""
        self._recipe_templates = templates or ""
        self._recipe_decision = dict(decision)
        return self

    @property
    def recipe_known(self) -> bool:
        return self._recipe_decision is not None

    @property
    def recipe_templates(self) -> str | None:
        return self._recipe_templates or None

    def _known_recipe_decision(self) -> dict:
        if self._recipe_decision is None:
            raise RuntimeError(f"job {self.name}: its recipe's decision defaults are unknown: read the job "
                               "with factory.spec.parse_job (or load_job), which finds the recipe")
        return self._recipe_decision

    def template(self, ref: str):
        """A role's template: name@version from templates_dir, the recipe's templates, then
        the built-in prompts/; or a .jinja path relative to the job file."""
        from roles.templates import load_template

        return load_template(ref, self._base_dir, self.templates_dir, self.recipe_templates)

    def user_files(self) -> dict[str, str]:
        """sha256 (16 hex) of the content of each user file the job runs with, by the field
        that names it: a recipe file (path/file.py:Class) and each role's template read from
        a .jinja path or templates_dir. Built-in recipes and prompts/ are not files of the
        job (their versions name them). An edit in place makes another job."""
        from roles.templates import user_template_path

        files = {}
        target, sep, _ = self.recipe.rpartition(":")
        if sep and target.endswith(".py"):
            path = Path(target).expanduser()
            if not path.is_absolute() and self._base_dir:
                path = Path(self._base_dir) / path
            files["recipe"] = _file_sha256(path)
        for name, role in sorted(self.roles.items()):
            path = user_template_path(role.template, self._base_dir, self.templates_dir, self.recipe_templates)
            if path is not None:
                files[f"roles.{name}.template"] = _file_sha256(path)
        return {k: v for k, v in files.items() if v is not None}

    def canonical(self) -> dict:
        """The spec that names the job: what decides the data (recipe, options, roles,
        templates, models, sampling, seed, decision rule), never how it is executed or how
        big it is (size, db, budgets, connection settings, execution)."""
        data = self.model_dump(mode="json", exclude=NOT_FINGERPRINTED | {"max_tokens_budget", "execution"})
        for role in data["roles"].values():
            role.pop("max_tokens_budget", None)
            role.pop("endpoint", None)
            for ref in [role, *(role.get("pool") or [])]:
                ref.pop("endpoint", None)
                # wrong_rate 0 writes what jobs wrote before the field existed: same fingerprint
                if ref.get("wrong_rate", 0) == 0:
                    ref.pop("wrong_rate", None)
        for key, default in ABSENT_AT_DEFAULT_DECISION_KEYS.items():
            if data["decision"].get(key) == default:
                data["decision"].pop(key)
        # The recipe's own decision fields are absent at their default, but for the keys every
        # job wrote while the shared rule had them: always there, as they were.
        for key, default in own_decision_defaults(type(self.decision)).items():
            if key not in FORMER_SHARED_DECISION_KEYS and data["decision"].get(key) == default:
                data["decision"].pop(key)
        for key, (value, _) in FORMER_SHARED_DECISION_KEYS.items():
            data["decision"].setdefault(key, value)
        files = self._files if self._files is not None else self.user_files()
        if files:  # absent without user files: such jobs keep the fingerprints they had
            data["files"] = files
        return data

    @property
    def fingerprint(self) -> str:
        return _hash(self.canonical())

    def legacy_fingerprints(self) -> list[str]:
        """Fingerprints this job had earlier (databases made then continue the same job):
        before the math recipe gained the suggester and editor roles and the parent_job
        option (harder variants), and before that, before execution settings left the
        fingerprint and options moved under `options:`."""
        data = self.canonical()
        # Before the user files' content entered the fingerprint (issue 24 item 9): a job
        # made then continues (its files are taken as unchanged since).
        before_files = _hash(data) if data.pop("files", None) else None
        if self.templates_dir:
            return [before_files] if before_files else []
        # Before the gates and the likelihood signal (issue 11): their decision keys did not
        # exist; a job that leaves them at the recipe's defaults is the same job (it now
        # rejects more: truncated stories, missing seed words, loops).
        defaults = {**DecisionRule().model_dump(mode="json"),
                    **{k: value for k, (value, _) in FORMER_SHARED_DECISION_KEYS.items()},
                    **own_decision_defaults(type(self.decision)),
                    **self._known_recipe_decision()}
        gates = [k for k, (_, with_gates) in FORMER_SHARED_DECISION_KEYS.items() if with_gates]
        for key in [*SIGNAL_DECISION_KEYS, *gates]:
            if data["decision"].get(key) == defaults.get(key):
                data["decision"].pop(key)
        before_signals = _hash(data)
        if self.recipe == "math":  # role defaults and option defaults are part of the spec
            for role in ("suggester", "editor"):
                data["roles"].pop(role, None)
            if (data["options"] or {}).get("parent_job", "given") is None:
                data["options"].pop("parent_job")
        before_harder = _hash(data)
        options = data.pop("options")
        data.pop("templates_dir")
        data["textbook"] = options if self.recipe == "textbook" else None
        data["math"] = options if self.recipe == "math" else None
        # the execution settings that existed when they were part of the fingerprint
        execution = self.execution.model_dump(mode="json", include=LEGACY_EXECUTION_FIELDS)
        before_options = _hash({**data, "execution": execution})
        found = [f for f in (before_files, before_signals, before_harder, before_options)
                 if f is not None and f != self.fingerprint]
        return list(dict.fromkeys(found))


LEGACY_EXECUTION_FIELDS = {"executor", "engines", "threads_per_engine", "gpus_per_engine", "batch_size"}


def _file_sha256(path) -> str | None:  # a Path or a package resource
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return None


def _hash(data: dict) -> str:
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


SIGNAL_DECISION_KEYS = ("min_likelihood", "likelihood_model", "truncated")
# Decision keys left out of the canonical spec at their default: a job that does not use
# them keeps the fingerprint it had before they existed (no legacy fingerprint needed, and
# databases made by any earlier version continue their jobs). A recipe's own decision
# fields are left out at their default likewise (canonical).
ABSENT_AT_DEFAULT_DECISION_KEYS = {"review_score": "sampled", "score": "reviewers",
                                   "text_gates": "reject", "min_reviews": None, "replacement_reviews": 0,
                                   "below_quorum": "drop"}
# Fingerprint history, read by no gate: keys the shared rule had for every recipe until
# TinyStories declared them as its own (issue 26), each with (the value it had for a recipe
# that does not declare it, whether it came with the gates of issue 11: legacy_fingerprints).
# Every job's canonical spec still writes them, at that value where the recipe does not
# declare the key, so no fingerprint changed; a job (a stored spec) giving one at that value
# is read under any recipe, and at another value only under a recipe that declares it.
FORMER_SHARED_DECISION_KEYS = {"max_out_of_vocabulary": (None, False), "require_seed_words": (False, True)}



def recipe_decision_defaults(recipe) -> dict:
    """The decision rule a recipe declares: its `decision` mapping and its `truncated` policy."""
    return {"truncated": getattr(recipe, "truncated", "reject"), **recipe.decision}


@functools.cache
def recipe_decision_rule(recipe) -> type[DecisionRule]:
    """The decision rule of a recipe's jobs: the shared DecisionRule, plus the recipe's own
    fields (Recipe.DecisionFields) where it declares any."""
    own = getattr(recipe, "DecisionFields", None)
    if own is None or not own.model_fields:
        return DecisionRule
    return type(f"{recipe.__name__}DecisionRule", (own, DecisionRule),  # the shared fields first
                {"__module__": recipe.__module__, "__doc__": f"DecisionRule with {own.__name__}'s fields",
                 # pickled as (its recipe, its values): the class is made here, no module names it
                 "__reduce__": lambda rule: (_recipe_rule, (recipe, rule.model_dump()))})


def _recipe_rule(recipe, values: dict) -> DecisionRule:
    return recipe_decision_rule(recipe).model_validate(values)


def own_decision_defaults(rule: type[DecisionRule]) -> dict:
    """The defaults of the fields a recipe's rule adds to the shared one."""
    return {k: f.default for k, f in rule.model_fields.items()
            if k not in DecisionRule.model_fields and not f.is_required()}


