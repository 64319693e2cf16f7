"""One engine cache for every executor: (backend, model, endpoint) -> a built backend,
built on first use. The in-process executor, each Ray engine actor and the remote executor
hold one each, so a model is loaded once per process whichever path serves it.

Calls may come from several threads (batches in flight in the driver, a Ray engine actor's
concurrent calls). An engine is not re-entrant, so each call holds the engine's lock, except
batched decoding (generate_batched, slots > 1): that engine queues the requests of every
caller into its own slots (backends/llamacpp_queue.py), which is the point of calling it
from several threads at once."""
from __future__ import annotations

import threading

from factory.backends import Completion, Request, build_backend
from factory.backends.base import ExpectedUnsupported, ScoreUnsupported, expected_unsupported, score_unsupported
from factory.keys import digest


class EngineCache:
    def __init__(self, threads: int = 1, slots: int = 1):
        self.threads, self.slots = threads, slots
        self._engines: dict[str, object] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._building = threading.Lock()  # one build per engine, not one per calling thread

    def engine(self, ref, entry=None):
        key = digest(ref.model_dump(mode="json"))
        with self._building:
            if key not in self._engines:
                self._engines[key] = build_backend(ref, threads=self.threads, entry=entry)
                self._locks[key] = threading.Lock()
        return self._engines[key]

    def _lock(self, ref) -> threading.Lock:
        return self._locks[digest(ref.model_dump(mode="json"))]

    def generate(self, ref, requests: list[Request], entry=None) -> list[Completion]:
        engine = self.engine(ref, entry)
        # execution.slots_per_engine > 1: an engine that can decode several requests together
        # (llamacpp's generate_batched) does, sharing its slots with concurrent callers;
        # others take them one call at a time (the engine's lock: one llama.cpp context is not thread-safe).
        if self.slots > 1 and callable(getattr(engine, "generate_batched", None)):
            return engine.generate_batched(requests, self.slots)
        with self._lock(ref):
            return engine.generate(requests)

    def score(self, ref, texts: list[str], entry=None) -> list[tuple[float, int]]:
        """The likelihood signal of each text under the model (see backends.base.Scorer)."""
        engine = self.engine(ref, entry)
        if not callable(getattr(engine, "score", None)):
            raise ScoreUnsupported(score_unsupported(ref.backend))
        with self._lock(ref):
            return engine.score(texts)

    def expected_scores(self, ref, items: list, fields: dict, entry=None) -> list[dict]:
        """Logprob-weighted review scores of (messages, completion) pairs (backends.base.ExpectedScorer)."""
        engine = self.engine(ref, entry)
        if not callable(getattr(engine, "expected_scores", None)):
            raise ExpectedUnsupported(expected_unsupported(ref.backend))
        with self._lock(ref):
            return engine.expected_scores(items, fields)

    def clear(self) -> None:
        with self._building:
            self._engines.clear()
            self._locks.clear()
