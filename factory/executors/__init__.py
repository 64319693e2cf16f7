"""Executors run role requests on model engines: in this process, or in Ray actors."""
from __future__ import annotations

from typing import Callable, Protocol

from factory.backends import Completion, Request

OnCompletion = Callable[[Completion], None]


class Executor(Protocol):
    engines: int

    def generate(self, backend: str, model: str, requests: list[Request],
                 on_completion: OnCompletion | None = None) -> list[Completion]: ...

    def close(self) -> None: ...


def make_executor(kind: str, engines: int | str, threads: int, address: str | None = None) -> Executor:
    if kind == "local":
        from factory.executors.local import LocalExecutor

        return LocalExecutor(threads=threads)
    from factory.executors.ray_pool import RayExecutor

    return RayExecutor(engines=engines, threads=threads, address=address)
