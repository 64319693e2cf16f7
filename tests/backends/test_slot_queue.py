"""Calls from several threads share one batched engine's slots (backends/llamacpp_queue.py).
The queue's bookkeeping with a scripted decoder (each call gets its own results, an error
reaches only the calls it stopped, the worker ends when idle), then the real SmolLM2: a
call made while another decodes joins the same decoding steps."""
from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from factory.backends import Completion, Request
from factory.backends.llamacpp_queue import SlotQueue


def req(key: str) -> Request:
    return Request(key=key, messages=({"role": "user", "content": key},), sampling={}, seed=0)


class ScriptedDecoder:
    """serve() as BatchedDecoder's contract: take while slots are free, deliver, fail on error.
    A request whose key starts with 'bad' raises once placed; `gate` holds the first step."""

    def __init__(self, slots: int, gate: threading.Event | None = None):
        self.slots, self.gate, self.widest, self.serves = slots, gate, 0, 0

    def serve(self, feed) -> None:
        self.serves += 1
        live, starting = [], None
        try:
            while True:
                while len(live) < self.slots:
                    item = feed.take()
                    if item is None:
                        break
                    starting, request, _ = item
                    if request.key.startswith("bad"):
                        raise RuntimeError(f"cannot place {request.key}")
                    live.append((starting, request))
                    starting = None
                if not live:
                    if feed.empty():
                        return
                    continue
                if self.gate is not None:
                    self.gate.wait()
                self.widest = max(self.widest, len(live))
                ticket, request = live.pop(0)
                feed.deliver(ticket, Completion(key=request.key, text=request.key.upper(), prompt_tokens=1,
                                                completion_tokens=1, seconds=0.0, finish_reason="stop"))
        except BaseException as exc:
            feed.fail([t for t, _ in live] + ([starting] if starting is not None else []), exc)
            raise


def submit_in_thread(queue, requests, out, name):
    def run():
        try:
            out[name] = queue.submit(requests, [(r.key,) for r in requests])
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            out[name] = exc
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def wait_for(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert condition()


def test_two_calls_share_the_slots_and_each_gets_its_own_results_in_order():
    gate = threading.Event()
    decoder = ScriptedDecoder(slots=8, gate=gate)
    queue, out = SlotQueue(decoder), {}
    first = submit_in_thread(queue, [req("a1"), req("a2"), req("a3")], out, "a")
    wait_for(lambda: queue.empty())  # a's three taken, held at the gate
    second = submit_in_thread(queue, [req("b1"), req("b2")], out, "b")
    wait_for(lambda: len(queue._waiting) == 2)  # b's two wait while a's first step is held
    gate.set()
    first.join(10), second.join(10)
    assert [c.key for c in out["a"]] == ["a1", "a2", "a3"]
    assert [c.text for c in out["b"]] == ["B1", "B2"]
    assert decoder.widest == 4  # after a1, b's two joined a2 and a3 in the same slots
    wait_for(lambda: queue._worker is None)  # the worker ends when nothing waits


def test_an_error_reaches_only_the_call_it_stopped_and_the_queue_goes_on():
    decoder = ScriptedDecoder(slots=1)
    queue = SlotQueue(decoder)
    with pytest.raises(RuntimeError, match="cannot place bad"):
        queue.submit([req("ok1"), req("bad"), req("never")], [("x",)] * 3)
    # the failed call's request after the error is never decoded; a later call is served
    assert [c.key for c in queue.submit([req("c1")], [("c1",)])] == ["c1"]
    wait_for(lambda: queue._worker is None)


def test_an_empty_call_returns_at_once():
    assert SlotQueue(ScriptedDecoder(slots=2)).submit([], []) == []


@pytest.mark.model
def test_a_call_made_while_another_decodes_joins_its_decoding_steps():
    """Real SmolLM2, 1 thread, 8 slots: call A (3 stories, 48 tokens) is decoding when call B
    (2 stories) arrives from another thread; B's sequences enter A's steps (widest step 5),
    and every completion is whole."""
    from factory.backends.llamacpp import LlamaCppBackend
    from factory.keys import request_seed
    from factory.pipeline import bind_roles, make_recipe
    from factory.recipes.tinystories import make_seed
    from factory.spec import load_job

    spec = load_job("jobs/tinystories-demo.yaml")
    gen = bind_roles(spec, make_recipe(spec))["generator"]
    requests = [gen.request(make_seed(spec.seed, i), request_seed(spec.seed, i, "generator")) for i in range(5)]
    requests = [dataclasses.replace(r, sampling={**r.sampling, "max_tokens": 48}) for r in requests]
    backend = LlamaCppBackend("smollm2-135m-instruct-q4_1", threads=1)
    out: dict = {}

    def call(name, part):
        out[name] = backend.generate_batched(part, 8)

    first = threading.Thread(target=call, args=("a", requests[:3]))
    first.start()
    wait_for(lambda: backend.decode_stats["steps"] >= 2, seconds=60)
    call("b", requests[3:])
    first.join(60)
    assert [c.key for c in out["a"] + out["b"]] == [r.key for r in requests]
    assert all(c.completion_tokens > 0 and c.text for c in out["a"] + out["b"])
    assert backend.decode_stats["widest"] == 5
