"""Ray executor: a pool of engine actors, each holding its loaded models.

Actors are sized to the cores: on 2 cores two 1-thread llama.cpp engines gave ~140 tok/s
together against ~118 for one 2-thread engine. Requests are dealt one at a time to
whichever actor is free (2 in flight per actor so none idles between calls); one Ray
call costs ~1 ms against seconds of generation. With execution.slots_per_engine > 1 a call
carries up to `slots` requests, which the engine decodes together.
"""
from __future__ import annotations

import os
import threading
from collections import deque

import sys

from factory.backends import Completion, Request, registered
from factory.executors.admission import Admit, take_admitted
from factory.executors.engines import EngineCache
from factory.executors import reaper
from factory.executors.grouping import call_size
from factory.plugins import ray_runtime_env

# Ray 2.60 writes ~/.ray/auth_token unless told not to; a local tool should not.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
import ray  # noqa: E402

IN_FLIGHT_PER_ACTOR = 2
ACTOR_CONCURRENCY = 32
# Batches in flight (factory/streaming.py) call generate from several driver threads: Ray's
# submission (.remote, wait, get) is thread-safe, cloudpickle's by-value registry is a plain
# set, so registering is serialized. Each call keeps its own in-flight count, so an actor
# may hold up to 2 calls per batch thread: it runs them at once (a threaded actor), a
# batched engine in the same slots, any other one at a time (executors/engines.py).
_PICKLE_LOCK = threading.Lock()


def _pickle_by_value(entry) -> None:
    """Modules outside installed packages (a test's fakes, a backend file next to a job)
    travel by value: Ray workers import by name from their own sys.path."""
    with _PICKLE_LOCK:
        _register_by_value(entry)


def _register_by_value(entry) -> None:
    for fn in (entry.identity, entry.build):
        module = sys.modules.get(getattr(fn, "__module__", ""))
        file = getattr(module, "__file__", None) or ""
        if module is not None and "site-packages" not in file and not module.__name__.startswith(
                ("factory", "roles", "stores", "prompts")):
            ray.cloudpickle.register_pickle_by_value(module)
        for cell in getattr(fn, "__closure__", None) or ():
            inner = getattr(cell.cell_contents, "__module__", None)
            if inner in sys.modules and inner.startswith("factory_user_"):
                ray.cloudpickle.register_pickle_by_value(sys.modules[inner])


class EngineActor:
    def __init__(self, threads: int, slots: int = 1):
        self.cache = EngineCache(threads, slots)

    def generate(self, ref, requests: list[Request], entry=None) -> list[Completion]:
        return self.cache.generate(ref, requests, entry)

    def score(self, ref, texts: list[str], entry=None) -> list[tuple[float, int]]:
        return self.cache.score(ref, texts, entry)

    def expected_scores(self, ref, items: list, fields: dict, entry=None) -> list[dict]:
        return self.cache.expected_scores(ref, items, fields, entry)

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()


class RayExecutor:
    def __init__(self, engines: int | str = "auto", threads: int = 1, address: str | None = None, gpus: float = 0,
                 slots: int = 1):
        self.slots = slots
        self._owns_ray = not ray.is_initialized()
        self._reaper = None
        if self._owns_ray:
            # A user file's own imports (a module next to it) resolve in the workers too.
            env = ray_runtime_env(upload=address is not None)
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     logging_level="ERROR", configure_logging=True, **({"runtime_env": env} if env else {}))
            # The Ray processes this driver started end with it, kill -9 included
            # (executors/reaper.py); a cluster it only joined is not its to end.
            node = ray._private.worker._global_node  # no public API names the session
            if node is not None and node.is_head():  # started here, not joined
                self._reaper = reaper.start(node.session_name)
        resources = ray.cluster_resources()
        by_cpu = max(1, int(resources.get("CPU", 1)) // threads)
        # With GPUs per engine, "auto" is as many engines as the cluster's GPUs hold.
        by_gpu = int(resources.get("GPU", 0) // gpus) if gpus else by_cpu
        self.engines = max(1, min(by_cpu, by_gpu)) if engines == "auto" else int(engines)
        # A crashed actor is restarted and its call retried: generation is idempotent
        # (same request, same seed, same text) and the driver writes nothing until it returns.
        # Threaded actors (max_concurrency): calls from several driver threads (batches in
        # flight) run at once, so a batched engine's slots take requests from all of them
        # (backends/llamacpp_queue.py); every other call still holds the engine's lock
        # (executors/engines.py). 2 calls per actor per driver thread, with room to spare.
        # In a Ray started by someone else on this machine, the actors get the user folders.
        env = None if self._owns_ray else ray_runtime_env(upload=False)
        actor_cls = ray.remote(num_cpus=threads, num_gpus=gpus, max_restarts=2, max_task_retries=2,
                               max_concurrency=ACTOR_CONCURRENCY, **({"runtime_env": env} if env else {}))(EngineActor)
        self.actors = [actor_cls.remote(threads, slots) for _ in range(self.engines)]

    def generate(self, ref, requests: list[Request], on_completion=None, entry=None,
                 admit: Admit | None = None) -> list[Completion]:
        # The backend entry travels with each call: a backend registered from Python or
        # loaded from a file is not importable by name in a worker.
        entry = entry or registered(ref.backend)
        _pickle_by_value(entry)
        if entry.batching:
            return self._generate_chunks(ref, requests, on_completion, entry, admit)
        pending = deque(enumerate(requests))
        results: list[Completion | None] = [None] * len(requests)
        in_flight = {}  # ObjectRef -> (actor, indices of its requests)
        load = {i: 0 for i in range(len(self.actors))}

        def submit() -> None:
            # Admitted as it is queued on an actor: a queued call is as good as sent. A call
            # carries up to `slots` requests (slots 1: one request a call) and no more than an
            # even share of what is left among the least loaded actors; it goes to one of them.
            # Why the even share: with 2 actors and 8 slots, a batch of 6 stories would
            # otherwise go to the first actor in one call while the second idles (the demo's
            # wall times both ways: docs/benchmarks.md, "The demo through `factory run`").
            while pending:
                actor_index = min(load, key=lambda i: (load[i], i))
                if load[actor_index] >= IN_FLIGHT_PER_ACTOR:
                    return
                least = sum(1 for i in load if load[i] == load[actor_index])  # actors as free as this one
                share = -(-len(pending) // least)
                size = call_size(pending, min(self.slots, share))  # same-prompt requests stay together
                group = take_admitted(pending, admit, size)
                if group:
                    call = self.actors[actor_index].generate.remote(ref, [request for _, request in group], entry)
                    in_flight[call] = (actor_index, [index for index, _ in group])
                    load[actor_index] += 1
                if pending and len(group) < size:
                    return  # refused: ask again when something in flight has arrived

        submit()
        while in_flight:  # empty: all done, or the next request does not fit with nothing in flight
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for call in ready:
                actor_index, indices = in_flight.pop(call)
                load[actor_index] -= 1
                for index, completion in zip(indices, ray.get(call)):
                    results[index] = completion
                    if on_completion:
                        on_completion(completion)
            submit()
        return results  # type: ignore[return-value]

    def _generate_chunks(self, ref, requests: list[Request], on_completion, entry, admit) -> list[Completion]:
        """A batching engine (vLLM) gets an equal share of the requests in one call, so its
        continuous batching sees them all at once. Every request of a chunk is admitted
        before the chunk is sent; when the budget refuses one, the chunks so far go out, and
        after they arrive (and settle) the rest is tried again."""
        pending = deque(requests)
        out: list[Completion] = []
        while pending:
            share = -(-len(pending) // len(self.actors))
            chunks = []
            for actor in self.actors:
                chunk = take_admitted(pending, admit, share)
                if chunk:
                    chunks.append(actor.generate.remote(ref, chunk, entry))
                if pending and len(chunk) < share:
                    break  # refused
            if not chunks:  # the next request does not fit with nothing in flight
                break
            for completion in (c for chunk in ray.get(chunks) for c in chunk):
                if on_completion:
                    on_completion(completion)
                out.append(completion)
        return out

    def score(self, ref, texts: list[str], entry=None) -> list[tuple[float, int]]:
        """Each actor scores an equal, contiguous share of the texts (scoring is one forward
        pass a text, no sampling: nothing to deal out one at a time)."""
        entry = entry or registered(ref.backend)
        _pickle_by_value(entry)
        share = -(-len(texts) // len(self.actors)) if texts else 1
        calls = [actor.score.remote(ref, texts[i:i + share], entry)
                 for actor, i in zip(self.actors, range(0, len(texts), share))]
        return [s for part in ray.get(calls) for s in part]

    def expected_scores(self, ref, items: list, fields: dict, entry=None) -> list[dict]:
        """As score: each actor takes an equal, contiguous share of the (messages, completion) pairs."""
        entry = entry or registered(ref.backend)
        _pickle_by_value(entry)
        share = -(-len(items) // len(self.actors)) if items else 1
        calls = [actor.expected_scores.remote(ref, items[i:i + share], fields, entry)
                 for actor, i in zip(self.actors, range(0, len(items), share))]
        return [e for part in ray.get(calls) for e in part]

    def node_ids(self) -> list[str]:
        return ray.get([actor.node_id.remote() for actor in self.actors])

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
        if self._owns_ray:
            ray.shutdown()
            if self._reaper is not None:
                reaper.stop(self._reaper)  # what ray.shutdown() left (its agents) is gone when this returns
                self._reaper = None
