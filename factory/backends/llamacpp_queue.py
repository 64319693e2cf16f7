"""One queue per batched llamacpp engine, shared by every call: requests from several
calls (batches in flight, factory/streaming.py; a Ray engine's concurrent calls) decode in
the same slots, so a slot that frees takes the next waiting request whichever call sent it.

Why: a call carries one batch's requests (a demo batch of 6 stories gives each of 2 engines
~3 sequences), so with one call at a time most of an engine's slots sat empty (6.8 of 8 in
the latency bench) while the next batch's requests waited behind the engine's lock. One
thread per queue decodes (llama.cpp's context is not re-entrant); callers block on their
own ticket. The thread ends when the queue is empty, so a dropped engine is not kept alive.
"""
from __future__ import annotations

import threading
from collections import deque

from factory.backends.base import Completion, Request


class _Ticket:
    """One call: its results by position, and the first error that hit any of them."""

    def __init__(self, size: int):
        self.results: list[Completion | None] = [None] * size
        self.left = size
        self.error: BaseException | None = None
        self.done = threading.Event()
        if not size:
            self.done.set()


class SlotQueue:
    def __init__(self, decoder):
        self.decoder = decoder  # a BatchedDecoder: its context and held prefixes live as long as the queue
        self._cond = threading.Condition()
        self._waiting: deque = deque()  # ((ticket, position), request, prompt tokens)
        self._worker: threading.Thread | None = None

    def submit(self, requests: list[Request], prompts: list[tuple]) -> list[Completion]:
        """Blocks until every request of this call has its completion; raises the error that
        stopped any of them (the others of the call are still decoded or dropped, never sent twice)."""
        ticket = _Ticket(len(requests))
        with self._cond:
            self._waiting.extend(((ticket, i), r, p) for i, (r, p) in enumerate(zip(requests, prompts)))
            if requests and self._worker is None:
                self._worker = threading.Thread(target=self._serve, name="llamacpp-slots", daemon=True)
                self._worker.start()
        ticket.done.wait()
        if ticket.error is not None:
            raise ticket.error
        return ticket.results  # type: ignore[return-value]

    # -- the feed BatchedDecoder.serve reads (the worker thread only takes) ----------------

    def take(self):
        with self._cond:
            while self._waiting:
                item = self._waiting.popleft()
                if item[0][0].error is None:  # a call that already failed gets nothing more decoded
                    return item
            return None

    def upcoming(self) -> set:
        with self._cond:
            return {prompt for _, _, prompt in self._waiting}

    def empty(self) -> bool:
        with self._cond:
            return not self._waiting

    def deliver(self, where: tuple[_Ticket, int], completion: Completion) -> None:
        ticket, position = where
        ticket.results[position] = completion
        ticket.left -= 1
        if ticket.left == 0 and ticket.error is None:
            ticket.done.set()

    def fail(self, where: list[tuple[_Ticket, int]], error: BaseException) -> None:
        """The calls whose requests the decoder was holding when `error` stopped it get the
        error (their callers retry or stop); their requests still waiting are dropped (take),
        the other calls' go on in the next serve."""
        for ticket, _ in where:
            if ticket.error is None:
                ticket.error = error
                ticket.done.set()

    # -- the worker --------------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            try:
                self.decoder.serve(self)
            except BaseException:  # noqa: BLE001 - handed to the calls it stopped (fail)
                pass
            with self._cond:
                if not self._waiting:
                    self._worker = None  # the next submit starts a new worker
                    return
