"""Role calls: a role bound to its spec and model, run through the completions cache and
an executor. Only requests missing from the cache reach a model."""
from __future__ import annotations

from dataclasses import dataclass

from factory.backends import Completion, Request
from factory.keys import request_key
from factory.spec import RoleSpec
from roles import Role


@dataclass
class BoundRole:
    role: Role
    spec: RoleSpec
    identity: dict  # ModelIdentity.as_dict()

    def request(self, variables: dict, seed: int) -> Request:
        messages = self.role.messages(variables)
        sampling = self.spec.sampling.model_dump()
        key = request_key(self.identity, messages, sampling, seed, self.role.json_schema,
                          self.role.name, self.role.version, self.role.template.sha256)
        return Request(key=key, messages=messages, sampling=sampling, seed=seed, json_schema=self.role.json_schema)

    def lineage(self, request: Request, completion: Completion) -> dict:
        return {
            "template": self.role.template.ref, "template_sha256": self.role.template.sha256,
            "role_version": self.role.version, "model": self.identity, "sampling": request.sampling,
            "request_seed": request.seed, "request_key": request.key,
            "prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens,
            "seconds": round(completion.seconds, 4),
        }


class Caller:
    def __init__(self, store, executor, on_completion=None):
        self.store = store
        self.executor = executor
        self.on_completion = on_completion
        self.model_calls = 0

    def run(self, bound: BoundRole, requests: list[Request]) -> list[Completion]:
        hits = self.store.cached([r.key for r in requests])
        missing = [r for r in requests if r.key not in hits]
        # Two seeds may render the same request: ask the model once.
        unique = list({r.key: r for r in missing}.values())
        fresh = {}
        if unique:
            self.model_calls += len(unique)
            for c in self.executor.generate(bound.spec.backend, bound.spec.model, unique, self.on_completion):
                fresh[c.key] = c
            self.store.put_completions([
                {"request_key": c.key, "model": bound.identity, "text": c.text, "prompt_tokens": c.prompt_tokens,
                 "completion_tokens": c.completion_tokens, "seconds": round(c.seconds, 4),
                 "finish_reason": c.finish_reason}
                for c in fresh.values()
            ])
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
