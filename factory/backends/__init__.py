"""Backend registry: name -> (identity function, constructor). The error lists what exists."""
from __future__ import annotations

from typing import Callable

from factory.backends.base import Backend, Completion, MissingPackage, ModelIdentity, Request

_IDENTITY: dict[str, Callable[[str], ModelIdentity]] = {}
_BUILD: dict[str, Callable[..., Backend]] = {}


def register(name: str, identity: Callable[[str], ModelIdentity], build: Callable[..., Backend]) -> None:
    _IDENTITY[name] = identity
    _BUILD[name] = build


def _check(name: str) -> None:
    if name not in _BUILD:
        raise ValueError(f"unknown backend {name!r}: registered backends are {', '.join(sorted(_BUILD))}")


def model_identity(backend: str, model: str) -> ModelIdentity:
    _check(backend)
    return _IDENTITY[backend](model)


def build_backend(backend: str, model: str, threads: int = 1) -> Backend:
    _check(backend)
    return _BUILD[backend](model, threads=threads)


def _llamacpp_identity(model: str) -> ModelIdentity:
    from factory.backends.llamacpp import identity_for

    return identity_for(model)


def _llamacpp_build(model: str, threads: int = 1) -> Backend:
    from factory.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend(model, threads=threads)


register("llamacpp", _llamacpp_identity, _llamacpp_build)

__all__ = ["Backend", "Completion", "MissingPackage", "ModelIdentity", "Request", "register",
           "model_identity", "build_backend"]
