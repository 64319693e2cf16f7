"""In-process executor: one engine per (backend, model), requests run in order (a batching
engine gets them in one call)."""
from __future__ import annotations

from factory.backends import Completion, Request
from factory.executors.engines import EngineCache


class LocalExecutor:
    def __init__(self, threads: int = 1):
        self.engines = 1
        self._cache = EngineCache(threads)

    def generate(self, ref, requests: list[Request], on_completion=None, entry=None) -> list[Completion]:
        batching = entry is not None and entry.batching
        groups = [requests] if batching else [[r] for r in requests]
        out = []
        for group in groups:
            for completion in self._cache.generate(ref, group, entry):
                if on_completion:
                    on_completion(completion)
                out.append(completion)
        return out

    def close(self) -> None:
        self._cache.clear()
