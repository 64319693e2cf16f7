"""What every backend takes and gives: many requests per call, so batching engines can batch."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Request:
    key: str                      # content hash; the completions cache is keyed by it
    messages: tuple[dict, ...]    # chat messages: {"role": ..., "content": ...}
    sampling: dict                # SamplingParams.model_dump()
    seed: int                     # per request, so a rerun samples the same text
    json_schema: dict | None = None
    route: int = 0                # which of the role's models serves it (reviewer pools)


@dataclass(frozen=True)
class Completion:
    key: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    finish_reason: str = "stop"
    cached: bool = False


@dataclass(frozen=True)
class ModelIdentity:
    """Enters every request key and every row's lineage."""

    backend: str
    model: str
    file_sha256: str = ""
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"backend": self.backend, "model": self.model, "file_sha256": self.file_sha256, **self.extra}


class Backend(Protocol):
    identity: ModelIdentity

    def generate(self, requests: list[Request]) -> list[Completion]: ...


class Scorer(Protocol):
    """A backend that can also give the likelihood signal: for each text, the mean natural-log
    probability of its tokens under the model (one forward pass, no sampling) and how many
    tokens were scored. Optional: a backend without `score` cannot be a reference model."""

    def score(self, texts: list[str]) -> list[tuple[float, int]]: ...


class ScoreUnsupported(RuntimeError):
    """A reference model's backend has no `score`; the message names the backend and what to use."""
    exit_code = 1  # a runtime problem (factory/cli.py's codes)


def score_unsupported(backend: str) -> str:
    return (f"backend {backend} cannot give the likelihood signal; use a llamacpp reference model "
            f"(decision.likelihood_model: {{backend: llamacpp, model: smollm2-135m-instruct-q4_1}}), a vllm "
            f"one, or an openai one whose server returns prompt logprobs (vLLM's)")


# Backends whose engines implement `score`, by registered name. A backend class (plugin,
# module:Class) is asked directly (hasattr score); a backend registered with a function
# declares it with declare_scoring(name).
SCORING_BACKENDS: set[str] = {"llamacpp", "vllm"}
# Backends whose `score` works only where their server offers it (openai: prompt logprobs
# through the legacy completions endpoint), known from its first answer: accepted at load,
# and used only by a job that asks for the likelihood (a job that does not is never stopped
# by a server without them).
SERVER_SCORING_BACKENDS: set[str] = {"openai"}


def declare_scoring(name: str) -> None:
    SCORING_BACKENDS.add(name)


class ExpectedScorer(Protocol):
    """A backend that can give logprob-weighted review scores (G-Eval): for each (chat
    messages, completion text) pair, and each score field of the completion's JSON, the
    model's probabilities over the field's allowed values at the position where the value
    was written, renormalized over those values: {field: {value: probability}}. Fields not
    found in the text are left out. Optional, like `score`."""

    def expected_scores(self, items: list[tuple[tuple[dict, ...], str]],
                        fields: dict[str, list[int]]) -> list[dict[str, dict[int, float]]]: ...


class ExpectedUnsupported(RuntimeError):
    """A reviewer's backend has no `expected_scores`; the message names the backend and what to use."""
    exit_code = 1  # a runtime problem (factory/cli.py's codes)


def expected_unsupported(backend: str) -> str:
    return (f"backend {backend} cannot give the token probabilities that expected review scores need; "
            f"use a llamacpp reviewer model, or decision.review_score: sampled")


# Backends whose engines implement `expected_scores`, by registered name (as SCORING_BACKENDS).
EXPECTED_SCORE_BACKENDS: set[str] = {"llamacpp"}


def declare_expected_scores(name: str) -> None:
    EXPECTED_SCORE_BACKENDS.add(name)


def expected_value(probabilities: dict) -> float:
    """The expectation of a score under its (renormalized) distribution {value: p}; keys may
    be JSON strings ("7") after a round trip through the store."""
    total = sum(probabilities.values())
    if total <= 0:
        raise ValueError("a score distribution with no probability mass")
    return sum(float(v) * p for v, p in probabilities.items()) / total


class MissingPackage(RuntimeError):
    """A backend or model needs a package that is not installed; the message names it."""
    exit_code = 1  # a runtime problem (factory/cli.py's codes)


@lru_cache(maxsize=32)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:  # size/mtime: a rewritten file is hashed again
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a model file (what `sha256sum` prints); it enters every request key."""
    st = path.stat()
    return _file_sha256(str(path.resolve()), st.st_size, st.st_mtime_ns)
