"""Remote backends from the driver: HTTP calls are I/O, so a thread pool bounded by the
endpoint's max_concurrency is all it takes (the one place remote concurrency is bounded);
the server does the batching. Completions are reported one by one as they arrive, so a
failure loses none that finished.

This thread alone sends: a request goes to the pool only after the budget admitted it, so
what is in flight is always reserved (a pool given every request at once would have up to
max_concurrency requests past a cap before the first answer)."""
from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from factory.backends import Completion, Request
from factory.executors.admission import Admit, take_admitted
from factory.executors.engines import EngineCache
from factory.keys import digest


class RemoteExecutor:
    engines = 0

    def __init__(self):
        self._cache = EngineCache()
        # Batches in flight (factory/streaming.py) call generate from several threads: the
        # endpoint's max_concurrency bounds them all together, not each call.
        self._lock = threading.Lock()
        self._bounds: dict[str, threading.BoundedSemaphore] = {}

    def generate(self, ref, requests: list[Request], on_completion=None, entry=None,
                 admit: Admit | None = None) -> list[Completion]:
        limit = ref.endpoint.max_concurrency if ref.endpoint else 4
        with self._lock:
            backend = self._cache.engine(ref, entry)
            bound = self._bounds.setdefault(digest(ref.model_dump(mode="json")), threading.BoundedSemaphore(limit))
        results: list[Completion | None] = [None] * len(requests)

        def one(index: int) -> None:
            with bound:
                completion = backend.generate([requests[index]])[0]
            results[index] = completion
            if on_completion:  # settles the budget before this future is done
                on_completion(completion)

        pending = deque(enumerate(requests))
        in_flight: set = set()
        # Leaving the with block waits for the requests in flight (a failure or a budget
        # stop): they arrive, are reported and cached.
        with ThreadPoolExecutor(limit) as pool:
            while True:
                for index, _ in take_admitted(pending, admit, limit - len(in_flight)):
                    in_flight.add(pool.submit(one, index))
                if not in_flight:  # all done, or the next request does not fit with nothing in flight
                    break
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for f in done:
                    if f.exception() is not None:
                        raise f.exception()
        return results  # type: ignore[return-value]

    def score(self, ref, texts: list[str], entry=None) -> list[tuple[float, int]]:
        return self._cache.score(ref, texts, entry)

    def expected_scores(self, ref, items: list, fields: dict, entry=None) -> list[dict]:
        return self._cache.expected_scores(ref, items, fields, entry)

    def close(self) -> None:
        self._cache.clear()
