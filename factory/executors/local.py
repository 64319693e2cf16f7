"""In-process executor: one engine per (backend, model), requests run in order."""
from __future__ import annotations

from factory.backends import Completion, Request, build_backend, registered


class LocalExecutor:
    def __init__(self, threads: int = 1):
        self.threads = threads
        self.engines = 1
        self._backends: dict[tuple[str, str], object] = {}

    def generate(self, ref, requests: list[Request], on_completion=None) -> list[Completion]:
        key = (ref.backend, ref.model)
        if key not in self._backends:
            self._backends[key] = build_backend(ref, threads=self.threads)
        if registered(ref.backend).batching:  # one call: the engine batches them
            out = self._backends[key].generate(requests)
            for completion in out:
                if on_completion:
                    on_completion(completion)
            return out
        out = []
        for request in requests:
            completion = self._backends[key].generate([request])[0]
            if on_completion:
                on_completion(completion)
            out.append(completion)
        return out

    def close(self) -> None:
        self._backends.clear()
