"""Executors run role requests: local engines (llama.cpp) in Ray actors or in this process;
remote backends (HTTP servers) from the driver with bounded concurrency. The Dispatcher
routes each role to the right one."""
from __future__ import annotations

import threading
from typing import Callable, Protocol

from factory.backends import Completion, Request, registered
from factory.executors.admission import Admit

OnCompletion = Callable[[Completion], None]


class Executor(Protocol):
    engines: int

    def generate(self, ref, requests: list[Request], on_completion: OnCompletion | None = None,
                 entry=None, admit: Admit | None = None) -> list[Completion]: ...

    def score(self, ref, texts: list[str], entry=None) -> list[tuple[float, int]]: ...

    def expected_scores(self, ref, items: list, fields: dict, entry=None) -> list[dict]: ...

    def close(self) -> None: ...


class Dispatcher:
    def __init__(self, kind: str, engines: int | str, threads: int, address: str | None = None, gpus: float = 0,
                 slots: int = 1):
        self._kind, self._engines, self._threads, self._address, self._gpus = kind, engines, threads, address, gpus
        self._slots = slots  # execution.slots_per_engine
        self._local: Executor | None = None
        self._remote: Executor | None = None
        self._starting = threading.Lock()  # batches in flight: one pool started, not one per thread

    def _engine_pool(self) -> Executor:
        # Started on first use: a job whose roles are all remote starts no engines.
        if self._local is None:
            if self._kind == "local":
                from factory.executors.local import LocalExecutor

                self._local = LocalExecutor(threads=self._threads, slots=self._slots)
            else:
                from factory.executors.ray_pool import RayExecutor

                self._local = RayExecutor(engines=self._engines, threads=self._threads, address=self._address,
                                          gpus=self._gpus, slots=self._slots)
        return self._local

    def _for(self, entry) -> Executor:
        """The one dispatch path: remote backends to the driver's thread pool, local ones to
        the engine pool (generate and score alike)."""
        with self._starting:
            return self._remote_pool() if entry.remote else self._engine_pool()

    def _remote_pool(self) -> Executor:
        if self._remote is None:
            from factory.executors.remote import RemoteExecutor

            self._remote = RemoteExecutor()
        return self._remote

    def generate(self, ref, requests: list[Request], on_completion: OnCompletion | None = None,
                 admit: Admit | None = None) -> list[Completion]:
        """admit: the budget's door (executors/admission.py); None sends everything."""
        entry = registered(ref.backend)
        return self._for(entry).generate(ref, requests, on_completion, entry, admit)

    def score(self, ref, texts: list[str]) -> list[tuple[float, int]]:
        """(mean log-probability, tokens scored) of each text under the model `ref` (the
        likelihood signal); ScoreUnsupported when its backend has no `score`."""
        entry = registered(ref.backend)
        return self._for(entry).score(ref, texts, entry)

    def expected_scores(self, ref, items: list[tuple[tuple[dict, ...], str]],
                        fields: dict[str, list[int]]) -> list[dict[str, dict[int, float]]]:
        """For each (chat messages, completion text), the model `ref`'s probabilities over each
        score field's allowed values where the value was written (logprob-weighted review
        scores); ExpectedUnsupported when its backend has no `expected_scores`."""
        entry = registered(ref.backend)
        return self._for(entry).expected_scores(ref, items, fields, entry)

    def close(self) -> None:
        for ex in (self._local, self._remote):
            if ex is not None:
                ex.close()


def make_executor(kind: str, engines: int | str, threads: int, address: str | None = None,
                  gpus: float = 0, slots: int = 1) -> Dispatcher:
    return Dispatcher(kind, engines, threads, address, gpus, slots)
