"""Backend registry: name -> identity function, constructor, and whether it is remote.

A local backend (llamacpp) runs inside engine actors that hold the loaded model; a remote
one (openai) is an HTTP client, run from the driver with bounded concurrency. Besides the
built-ins: `register()` from Python, an entry point in the group `factory.backends`, or
`module:Class` / `path/file.py:Class` in a job. A plugin class has a classmethod
`identity(ref) -> ModelIdentity`, a constructor `(ref, threads)` and `generate(requests)`;
class attributes `remote` and `batching` (both False by default); an optional classmethod
`check(role_name, spec, recipe)` refuses, at load, a role the backend cannot serve (raises
ValueError with one line; factory/job_checks.py check_roles calls it). The executors send the
resolved entry to engine actors with each call, so whatever the driver can find, a Ray
actor can run. The error for an unknown name lists what exists.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from factory.backends.base import Backend, Completion, MissingPackage, ModelIdentity, Request
from factory.plugins import PluginError, entry_point_names, is_reference, load_entry_point, load_reference


@dataclass(frozen=True)
class Registered:
    identity: Callable  # (model_ref) -> ModelIdentity
    build: Callable     # (model_ref, threads) -> Backend
    remote: bool = False
    batching: bool = False  # the engine batches many requests (vLLM): send them together
    check: Callable | None = None  # (role name, job spec, recipe class) -> None; ValueError: not servable


_REGISTRY: dict[str, Registered] = {}


def register(name: str, identity: Callable, build: Callable, remote: bool = False, batching: bool = False,
             check: Callable | None = None) -> None:
    _REGISTRY[name] = Registered(identity, build, remote, batching, check)


GROUP = "factory.backends"


def _from_class(cls) -> Registered:
    if not (isinstance(cls, type) and callable(getattr(cls, "identity", None)) and hasattr(cls, "generate")):
        raise PluginError(f"backend {cls!r}: a backend class needs a classmethod identity(ref) and generate(requests)")
    return Registered(cls.identity, lambda ref, threads=1: cls(ref, threads), bool(getattr(cls, "remote", False)),
                      bool(getattr(cls, "batching", False)), getattr(cls, "check", None))


def registered(name: str, base_dir: str | None = None) -> Registered:
    """A backend by name: registered, an entry point, or module:Class / file.py:Class."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if is_reference(name):
        entry = _from_class(load_reference(name, base_dir, "backend"))
    else:
        plugins = entry_point_names(GROUP)
        if name not in plugins:
            # names only: a module:Class or file.py:Class reference a job loaded earlier in this
            # process is cached in _REGISTRY, but it is not a backend's name
            known = sorted({n for n in _REGISTRY if not is_reference(n)} | set(plugins))
            raise PluginError(f"unknown backend {name!r}: known backends are {', '.join(known)};"
                              f" plugins are found in the entry point group {GROUP}, or name one as module:Class or "
                              f"path/file.py:Class")
        entry = _from_class(load_entry_point(GROUP, name, "backend"))
    _REGISTRY[name] = entry
    return entry


def class_offers(backend: str, method: str, base_dir: str | None = None) -> bool:
    """Whether a backend named as module:Class / file.py:Class or by an entry point is a class
    with `method` (score, expected_scores), found without building it or loading a model.
    Backends registered with functions say so in base.py (declare_scoring, ...)."""
    if is_reference(backend):
        cls = load_reference(backend, base_dir, "backend")
    elif backend in entry_point_names(GROUP):
        cls = load_entry_point(GROUP, backend, "backend")
    else:
        return False
    return callable(getattr(cls, method, None))


def model_identity(ref) -> ModelIdentity:
    """ref: a RoleSpec or ModelRef (backend, model, endpoint)."""
    return registered(ref.backend).identity(ref)


def build_backend(ref, threads: int = 1, entry: Registered | None = None) -> Backend:
    return (entry or registered(ref.backend)).build(ref, threads)


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


def _reference_identity(ref) -> ModelIdentity:
    from factory.backends.reference import identity_for

    return identity_for(ref)


def _reference_build(ref, threads: int = 1) -> Backend:
    from factory.backends.reference import ReferenceBackend

    return ReferenceBackend(ref, threads=threads)


def _reference_check(role_name: str, spec, recipe) -> None:
    from factory.backends.reference import ReferenceBackend

    ReferenceBackend.check(role_name, spec, recipe)


# The scripted reference teacher (factory/backends/reference.py): remote so that it runs in
# the driver, beside the math recipe's registry of built-in problems; it calls no server.
register("reference", _reference_identity, _reference_build, remote=True, check=_reference_check)

__all__ = ["Backend", "Completion", "MissingPackage", "ModelIdentity", "Request", "build_backend",
           "model_identity", "register", "registered"]
