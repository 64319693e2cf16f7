"""Remote backends from the driver: HTTP calls are I/O, so a thread pool bounded by the
endpoint's max_concurrency is all it takes (the one place remote concurrency is bounded);
the server does the batching. Completions are reported one by one as they arrive, so a
failure loses none that finished."""
from __future__ import annotations

from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from factory.backends import Completion, Request
from factory.executors.engines import EngineCache


class RemoteExecutor:
    engines = 0

    def __init__(self):
        self._cache = EngineCache()

    def generate(self, ref, requests: list[Request], on_completion=None, entry=None) -> list[Completion]:
        backend = self._cache.engine(ref, entry)
        results: list[Completion | None] = [None] * len(requests)

        def one(index: int) -> None:
            completion = backend.generate([requests[index]])[0]
            results[index] = completion
            if on_completion:
                on_completion(completion)

        with ThreadPoolExecutor(ref.endpoint.max_concurrency if ref.endpoint else 4) as pool:
            futures = [pool.submit(one, i) for i in range(len(requests))]
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for f in pending:
                f.cancel()
            for f in futures:
                if f.done() and not f.cancelled() and f.exception() is not None:
                    raise f.exception()
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self._cache.clear()
