"""In-process executor: one engine per (backend, model), requests run in order (a batching
engine gets them in one call; with slots > 1, up to `slots` per call, decoded together, a
few more where same-prompt requests would be cut: executors/grouping.py).
Each request is admitted by the budget before it runs; a call of several is admitted
request by request and sent with those that fit."""
from __future__ import annotations

from collections import deque

from factory.backends import Completion, Request
from factory.executors.admission import Admit, take_admitted
from factory.executors.engines import EngineCache
from factory.executors.grouping import call_size


class LocalExecutor:
    def __init__(self, threads: int = 1, slots: int = 1):
        self.engines, self.slots = 1, slots
        # Batches in flight (factory/streaming.py) call from several threads: the cache
        # builds each engine once and serializes calls on it, but for batched decoding,
        # where the threads' requests share the engine's slots (executors/engines.py).
        self._cache = EngineCache(threads, slots)

    def generate(self, ref, requests: list[Request], on_completion=None, entry=None,
                 admit: Admit | None = None) -> list[Completion]:
        batching = entry is not None and entry.batching
        pending = deque(requests)
        out = []
        while pending:
            # Nothing is in flight between groups: a group the budget refuses outright ends the call.
            group = take_admitted(pending, admit, len(pending) if batching else call_size(pending, self.slots))
            if not group:
                break
            completions = self._cache.generate(ref, group, entry)  # after admission: a refused caller holds no engine
            for completion in completions:
                if on_completion:
                    on_completion(completion)
                out.append(completion)
        return out

    def score(self, ref, texts: list[str], entry=None) -> list[tuple[float, int]]:
        return self._cache.score(ref, texts, entry)

    def expected_scores(self, ref, items: list, fields: dict, entry=None) -> list[dict]:
        return self._cache.expected_scores(ref, items, fields, entry)

    def close(self) -> None:
        self._cache.clear()
