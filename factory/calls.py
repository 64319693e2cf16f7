"""Role calls: a role bound to its spec and model(s), run through the completions cache,
the token budgets and an executor. Only requests missing from the cache reach a model."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata

from factory.backends import Completion, Request
from factory.keys import digest, request_key
from factory.spec import ModelRef, RoleSpec
from roles import Drop, Role


SAVE_EVERY_S = 1.0


class RoleFailed(RuntimeError):
    """An engine could not serve a role (a model that does not fit, a package missing in a
    worker): the message names the role and the model, then the engine's own error."""


class BudgetExceeded(RuntimeError):
    """A token budget was reached: the job stops; committed batches and cached completions stay."""


@lru_cache(maxsize=1)
def library_versions() -> dict:
    """The versions of what made a row (recorded in every model-made row's lineage)."""
    out = {}
    for package in ("factory", "llama-cpp-python", "vllm", "transformers", "openai"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return out


@dataclass
class BoundRole:
    role: Role
    spec: RoleSpec
    models: list[tuple[ModelRef, dict]]  # (model ref, identity); more than one for a pool
    name: str = ""                       # the recipe's name for the role (lineage, drops, budgets)
    job_seed: int = 0

    def __post_init__(self):
        self.name = self.name or self.role.name

    @property
    def identity(self) -> dict:
        return self.models[0][1]

    def eligible(self, exclude: dict | None) -> list[int]:
        if self.spec.exclude_generator_model and exclude is not None:
            return [i for i, (_, ident) in enumerate(self.models) if ident != exclude]
        return list(range(len(self.models)))

    def route(self, index: int, slot: int, exclude: dict | None) -> int:
        """GRA's random role pool: for each seed, a seeded order of the models allowed to
        play this role (the sample's author left out when asked); slot k takes the k-th, so
        the k reviewers of one sample are distinct models while the pool has enough."""
        if len(self.models) == 1:
            return 0
        allowed = self.eligible(exclude)
        if not allowed:  # checked when the job is loaded; here only if a role is bound by hand
            raise RoleFailed(f"role {self.name}: no model of its pool may serve a sample written by {exclude}")
        order = sorted(allowed, key=lambda m: digest(self.job_seed, index, self.name, m))
        return order[slot % len(order)]

    def request(self, variables: dict, seed: int, index: int = 0, slot: int = 0, exclude: dict | None = None) -> Request:
        route = self.route(index, slot, exclude)
        messages = self.role.messages(variables)
        sampling = self.spec.sampling.model_dump()
        key = request_key(self.models[route][1], messages, sampling, seed, self.role.json_schema,
                          self.role.name, self.role.version, self.role.template.sha256)
        return Request(key=key, messages=messages, sampling=sampling, seed=seed, json_schema=self.role.json_schema,
                       route=route)

    def parse(self, variables: dict, completion: Completion):
        """The role's parse; an exception in it (a user's parse, or output no parse expected)
        becomes a drop with the reason: garbage never stops a job."""
        try:
            return self.role.parse(variables, completion.text)
        except RecursionError:
            return Drop("unparseable: nested too deeply", completion.text)
        except Exception as err:  # noqa: BLE001 - any failure of a parse is a drop row, not a crash
            return Drop(f"parse failed: {type(err).__name__}: {str(err)[:200]}", completion.text)

    def lineage(self, request: Request, completion: Completion) -> dict:
        return {
            "role": self.name,
            "template": self.role.template.ref, "template_sha256": self.role.template.sha256,
            "role_version": self.role.version, "model": self.models[request.route][1], "sampling": request.sampling,
            "request_seed": request.seed, "request_key": request.key,
            "prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens,
            "seconds": round(completion.seconds, 4), "versions": library_versions(),
        }


@dataclass
class Budget:
    """Hard token caps (prompt + completion) per role and per job, counting what the job's
    committed rows already spent."""

    job_cap: int | None
    role_caps: dict[str, int]
    spent: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, role: str) -> None:
        total = sum(self.spent.values())
        if self.job_cap is not None and total >= self.job_cap:
            raise BudgetExceeded(f"job token budget reached: {total} of {self.job_cap} tokens spent")
        cap = self.role_caps.get(role)
        if cap is not None and self.spent.get(role, 0) >= cap:
            raise BudgetExceeded(f"token budget of role {role} reached: {self.spent[role]} of {cap} tokens spent")

    def add(self, role: str, tokens: int) -> None:
        with self._lock:
            self.spent[role] = self.spent.get(role, 0) + tokens


class Caller:
    def __init__(self, store, executor, on_completion=None, budget: Budget | None = None):
        self.store = store
        self.executor = executor
        self.on_completion = on_completion
        self.budget = budget or Budget(None, {})
        self.model_calls = 0

    def run(self, bound: BoundRole, requests: list[Request]) -> list[Completion]:
        hits = self.store.cached([r.key for r in requests])
        # Two seeds may render the same request: ask the model once.
        unique = list({r.key: r for r in requests if r.key not in hits}.values())
        fresh: dict[str, Completion] = {}
        route_of = {r.key: r.route for r in unique}
        role = bound.name
        unsaved: list[Completion] = []
        last_save = [time.monotonic()]
        lock = threading.Lock()  # remote completions arrive on the executor's threads

        def save() -> None:
            if not unsaved:
                return
            rows = [{"request_key": c.key, "model": bound.models[route_of[c.key]][1], "text": c.text,
                     "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                     "seconds": round(c.seconds, 4), "finish_reason": c.finish_reason} for c in unsaved]
            unsaved.clear()
            last_save[0] = time.monotonic()
            self.store.put_completions(rows)

        def arrived(c: Completion) -> None:
            with lock:
                fresh[c.key] = c
                unsaved.append(c)
                # Cached within a second of arriving, in small groups (one transaction each,
                # ~1 ms): a kill -9 loses at most the requests in flight and the last second.
                if time.monotonic() - last_save[0] >= SAVE_EVERY_S:
                    save()
            self.budget.add(role, c.prompt_tokens + c.completion_tokens)
            if self.on_completion:
                self.on_completion(c)
            self.budget.check(role)  # at the cap: stop now, not after the batch

        try:
            for route in sorted({r.route for r in unique}):
                batch = [r for r in unique if r.route == route]
                self.budget.check(role)
                self.model_calls += len(batch)
                ref = bound.models[route][0]
                try:
                    self.executor.generate(ref, batch, arrived)
                except (BudgetExceeded, ConnectionError, KeyboardInterrupt):
                    raise
                except Exception as err:  # noqa: BLE001 - re-raised with the role that asked
                    first = str(err).strip().splitlines()
                    raise RoleFailed(f"role {role} on {ref.backend}:{ref.model}: "
                                     f"{first[-1] if first else type(err).__name__}") from err
        finally:
            # Whatever arrived is cached even if the batch fails: a rerun pays for none of it twice.
            with lock:
                save()
        out = []
        for r in requests:
            if r.key in fresh:
                out.append(fresh[r.key])
            else:
                h = hits[r.key]
                out.append(Completion(key=r.key, text=h["text"], prompt_tokens=h["prompt_tokens"],
                                      completion_tokens=h["completion_tokens"], seconds=h["seconds"],
                                      finish_reason=h["finish_reason"] or "stop", cached=True))
        return out
