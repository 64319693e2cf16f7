"""In-process executor: one engine per (backend, model), requests run in order (a batching
engine gets them in one call; with slots > 1, up to `slots` per call, decoded together, a
few more where same-prompt requests would be cut: executors/grouping.py).
Each request is admitted by the budget before it runs; a call of several is admitted
request by request and sent with those that fit."""
from __future__ import annotations

import threading
from collections import deque

from factory.backends import Completion, Request
from factory.executors.admission import Admit, take_admitted
from factory.executors.engines import EngineCache
from factory.executors.grouping import call_size
from factory.keys import digest


class LocalExecutor:
    def __init__(self, threads: int = 1, slots: int = 1):
        self.engines, self.slots = 1, slots
        self._cache = EngineCache(threads, slots)
        # Batches in flight (factory/streaming.py) call from several threads; an engine
        # (llama.cpp) is not re-entrant: one call at a time per engine, built once.
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def _engine_lock(self, ref) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(digest(ref.model_dump(mode="json")), threading.Lock())

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
            with self._engine_lock(ref):  # taken after admission: a refused caller holds no engine
                completions = self._cache.generate(ref, group, entry)
            for completion in completions:
                if on_completion:
                    on_completion(completion)
                out.append(completion)
        return out

    def score(self, ref, texts: list[str], entry=None) -> list[tuple[float, int]]:
        with self._engine_lock(ref):
            return self._cache.score(ref, texts, entry)

    def expected_scores(self, ref, items: list, fields: dict, entry=None) -> list[dict]:
        with self._engine_lock(ref):
            return self._cache.expected_scores(ref, items, fields, entry)

    def close(self) -> None:
        self._cache.clear()
