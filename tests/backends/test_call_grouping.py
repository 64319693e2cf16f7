"""Engines that decode several requests together (execution.slots_per_engine > 1) get the
k reviewers of a sample in one call, so the engine can prefill their prompt once
(factory/executors/grouping.py). Fake backend, no model."""
from __future__ import annotations

import dataclasses
from collections import deque

import pytest

from factory.backends import Completion, Request
from factory.executors.engines import EngineCache
from factory.executors.grouping import call_size
from factory.executors.local import LocalExecutor
from factory.keys import request_seed
from factory.pipeline import bind_roles, make_recipe
from factory.spec import parse_job
from support import fake_job


def req(prompt: str, n: int = 0) -> Request:
    return Request(key=f"{prompt}-{n}", messages=({"role": "user", "content": prompt},), sampling={}, seed=n)


def prompts(size: int, pending: deque) -> list[str]:
    return [r.messages[0]["content"] for r in list(pending)[:size]]


def test_a_call_is_extended_so_a_run_of_one_prompt_is_not_cut():
    pending = deque([req(p, k) for p in "abcd" for k in range(3)])  # 4 samples x 3 reviewers
    assert call_size(pending, 4) == 6  # a a a b | b b -> the whole of b
    assert call_size(pending, 3) == 3  # the cut already falls between samples
    assert call_size(pending, 16) == 12  # fewer than slots left: all of them


def test_slots_one_and_runs_longer_than_twice_the_slots_are_cut_as_before():
    assert call_size(deque([req("a", k) for k in range(3)]), 1) == 1  # the one-request path is unchanged
    assert call_size(deque([req("a", k) for k in range(9)]), 2) == 4  # at most 2 x slots per call
    distinct = deque([req(p) for p in "abcdef"])
    assert call_size(distinct, 4) == 4


def test_index_request_pairs_as_the_ray_executor_queues_them():
    pending = deque(enumerate([req(p, k) for p in "ab" for k in range(3)]))
    assert call_size(pending, 2) == 3


def test_local_executor_sends_each_samples_reviewers_in_one_call(monkeypatch):
    """The reviewer requests as Review asks for them (seed by seed, reviewer 0..k-1, through
    Context.call's request building) reach the engine with each sample's k in one call."""
    spec = parse_job(fake_job(reviewers=3), source="test")
    recipe = make_recipe(spec)
    reviewer = bind_roles(spec, recipe)["reviewer"]
    requests = []
    for i in range(5):
        variables = recipe.review_variables(recipe.make_seed(i), {"text": f"Story number {i}. Tom ran."})
        requests += [reviewer.request(variables, request_seed(spec.seed, i, "reviewer", k), i, k) for k in range(3)]
    calls = []

    def record(self, ref, group, entry=None):
        calls.append([r.messages for r in group])
        return [Completion(key=r.key, text="{}", prompt_tokens=1, completion_tokens=1, seconds=0.0) for r in group]

    monkeypatch.setattr(EngineCache, "generate", record)
    ex = LocalExecutor(threads=1, slots=4)
    admitted = []
    out = ex.generate(spec.roles["reviewer"].model_ref(), requests, admit=lambda r: admitted.append(r.key) or True)
    assert [c.key for c in out] == [r.key for r in requests] and len(admitted) == 15
    assert [len(c) for c in calls] == [6, 6, 3]  # slots 4 cut 4/4/4/3 before: 3 samples split over two calls
    for i in range(5):
        holding = [n for n, call in enumerate(calls) if requests[3 * i].messages in call]
        assert len(holding) == 1, f"sample {i}'s reviewers in calls {holding}"


class CallEcho:
    """A backend whose every completion names the requests of its call."""

    def __init__(self, ref, threads=1):
        pass

    def generate(self, requests):
        together = ",".join(r.key for r in requests)
        return [Completion(key=r.key, text=together, prompt_tokens=1, completion_tokens=1, seconds=0.0)
                for r in requests]


def generate_on_ray(monkeypatch, backend_class, requests, slots: int):
    """The requests through a RayExecutor of 2 one-thread engines on a backend registered
    for this test (answering with backend_class)."""
    import ray

    from factory import backends
    from factory.backends.base import ModelIdentity
    from factory.executors.ray_pool import RayExecutor
    from factory.spec import ModelRef

    monkeypatch.setattr(backends, "_REGISTRY", dict(backends._REGISTRY))
    backends.register("echo", lambda ref: ModelIdentity(backend="echo", model=ref.model, file_sha256="0"),
                      lambda ref, threads=1: backend_class(ref, threads))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        ex = RayExecutor(engines=2, threads=1, slots=slots)
        out = ex.generate(ModelRef(backend="echo", model="m"), requests)
        ex.close()
    finally:
        ray.shutdown()
    return out


@pytest.mark.slow  # a 2-actor Ray start: 52-55 s at load 10-16 (the local executor's test above is fast)
def test_ray_engines_get_each_samples_reviewers_in_one_call(monkeypatch):
    requests = [req(p, k) for p in "abcde" for k in range(3)]
    out = generate_on_ray(monkeypatch, CallEcho, requests, slots=4)
    calls = {c.key: c.text.split(",") for c in out}
    assert sorted(calls) == sorted(r.key for r in requests)
    for p in "abcde":  # a sample's three reviewers were answered by one call
        assert len({tuple(calls[f"{p}-{k}"]) for k in range(3)}) == 1, calls


class PidEcho(CallEcho):
    """CallEcho that also names the process (the Ray engine actor) that answered."""

    def generate(self, requests):
        import os

        return [dataclasses.replace(c, text=f"{os.getpid()}:{c.text}") for c in super().generate(requests)]


@pytest.mark.slow
def test_ray_deals_a_batch_evenly_over_the_engines_when_slots_exceed_it(monkeypatch):
    """6 stories, 2 engines, 8 slots: dealt actor by actor, all 6 went to the first engine in
    one call and the second idled; now each engine gets an even share (3 in one call)."""
    requests = [req(p, 0) for p in "abcdef"]
    out = generate_on_ray(monkeypatch, PidEcho, requests, slots=8)
    assert [c.key for c in out] == [r.key for r in requests]
    calls = {c.text for c in out}  # "pid:keys of the call"
    assert len({call.split(":")[0] for call in calls}) == 2, calls  # both engines answered
    assert sorted(len(call.split(":")[1].split(",")) for call in calls) == [3, 3], calls
