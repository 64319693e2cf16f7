"""Remote backends from the driver: HTTP calls are I/O, so a thread pool bounded by the
endpoint's max_concurrency is all it takes; the server does the batching. Completions are
reported one by one as they arrive, so a failure loses none that finished."""
from __future__ import annotations

from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from factory.backends import Completion, Request, build_backend
from factory.keys import digest


class RemoteExecutor:
    engines = 0

    def __init__(self):
        self._backends: dict[str, object] = {}

    def generate(self, ref, requests: list[Request], on_completion=None) -> list[Completion]:
        key = digest(ref.model_dump(mode="json"))
        if key not in self._backends:
            self._backends[key] = build_backend(ref)
        backend = self._backends[key]
        results: list[Completion | None] = [None] * len(requests)

        def one(index: int) -> None:
            completion = backend.generate([requests[index]])[0]
            results[index] = completion
            if on_completion:
                on_completion(completion)

        with ThreadPoolExecutor(ref.endpoint.max_concurrency) as pool:
            futures = [pool.submit(one, i) for i in range(len(requests))]
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for f in pending:
                f.cancel()
            for f in futures:
                if f.done() and not f.cancelled() and f.exception() is not None:
                    raise f.exception()
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self._backends.clear()
