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


def score_unsupported(backend: str) -> str:
    return (f"backend {backend} cannot give the likelihood signal; use a llamacpp reference model "
            f"(decision.likelihood_model: {{backend: llamacpp, model: smollm2-135m-instruct-q4_1}})")


# Backends whose engines implement `score`, by registered name. A backend class (plugin,
# module:Class) is asked directly (hasattr score); a backend registered with a function
# declares it with declare_scoring(name).
SCORING_BACKENDS: set[str] = {"llamacpp"}


def declare_scoring(name: str) -> None:
    SCORING_BACKENDS.add(name)


class MissingPackage(RuntimeError):
    """A backend or model needs a package that is not installed; the message names it."""


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
