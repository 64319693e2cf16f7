"""How many requests an engine call carries when engines decode several together
(execution.slots_per_engine > 1).

A call carries `slots` requests, or a few more so that requests with the same prompt are
not cut between two calls: the pipeline asks for the k reviewers of a sample next to each
other (steps/review.py), and an engine prefills a prompt once per call and copies its KV
cache to the others (backends/llamacpp_batch.py). Cut at `slots`, a sample's reviewers
landed in two calls (with Ray, often two engines) and its prompt was prefilled twice: with
3 reviewers and 4 slots, 6 prefills per 4 samples instead of 4. The extra requests wait in
the engine's queue for a free slot (continuous batching), so no slot idles for it.
"""
from __future__ import annotations

from collections import deque


def _messages(item):
    """A pending item's prompt: requests, or (index, request) pairs (the Ray executor)."""
    return (item[1] if isinstance(item, tuple) else item).messages


def call_size(pending: deque, slots: int) -> int:
    """Requests from the front of `pending` for the next call: `slots`, extended while the
    next request repeats the last one's prompt, up to 2 x slots (a longer run is cut there).
    slots 1 (the one-request-per-call path) stays 1."""
    size = min(slots, len(pending))
    if slots <= 1:
        return size
    while 0 < size < min(len(pending), 2 * slots) and _messages(pending[size]) == _messages(pending[size - 1]):
        size += 1
    return size
