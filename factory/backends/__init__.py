"""Backend registry: name -> identity function, constructor, and whether it is remote.

A local backend (llamacpp) runs inside engine actors that hold the loaded model; a remote
one (openai) is an HTTP client, run from the driver with bounded concurrency. The error
for an unknown name lists what exists.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from factory.backends.base import Backend, Completion, MissingPackage, ModelIdentity, Request


@dataclass(frozen=True)
class Registered:
    identity: Callable  # (model_ref) -> ModelIdentity
    build: Callable     # (model_ref, threads) -> Backend
    remote: bool = False
    batching: bool = False  # the engine batches many requests (vLLM): send them together


_REGISTRY: dict[str, Registered] = {}


def register(name: str, identity: Callable, build: Callable, remote: bool = False, batching: bool = False) -> None:
    _REGISTRY[name] = Registered(identity, build, remote, batching)


def registered(name: str) -> Registered:
    if name not in _REGISTRY:
        raise ValueError(f"unknown backend {name!r}: registered backends are {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def model_identity(ref) -> ModelIdentity:
    """ref: a RoleSpec or ModelRef (backend, model, endpoint)."""
    return registered(ref.backend).identity(ref)


def build_backend(ref, threads: int = 1) -> Backend:
    return registered(ref.backend).build(ref, threads)


def _llamacpp_identity(ref) -> ModelIdentity:
    from factory.backends.llamacpp import identity_for

    return identity_for(ref.model)


def _llamacpp_build(ref, threads: int = 1) -> Backend:
    from factory.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend(ref.model, threads=threads)


def _openai_identity(ref) -> ModelIdentity:
    from factory.backends.openai_compat import identity_for

    return identity_for(ref.model, ref.endpoint)


def _openai_build(ref, threads: int = 1) -> Backend:
    from factory.backends.openai_compat import OpenAIBackend

    return OpenAIBackend(ref.model, ref.endpoint, threads=threads)


def _vllm_identity(ref) -> ModelIdentity:
    from factory.backends.vllm_backend import identity_for  # hashes the checkpoint; no vllm import

    return identity_for(ref)


def _vllm_build(ref, threads: int = 1) -> Backend:
    from factory.backends.vllm_backend import VLLMBackend

    return VLLMBackend(ref, threads=threads)


register("llamacpp", _llamacpp_identity, _llamacpp_build)
register("vllm", _vllm_identity, _vllm_build, batching=True)
register("openai", _openai_identity, _openai_build, remote=True)

__all__ = ["Backend", "Completion", "MissingPackage", "ModelIdentity", "Request", "build_backend",
           "model_identity", "register", "registered"]
