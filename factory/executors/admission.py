"""The budget's door as the executors see it: admit(request) -> bool, asked right before a
request is sent (True: its worst case is reserved; False: it does not fit now). Every
executor follows one rule: a refused request is not sent; while others are in flight the
executor waits for one to arrive (settling frees what it did not use) and asks again; when
nothing is in flight it stops and returns what arrived (the caller raises BudgetExceeded)."""
from __future__ import annotations

from collections import deque
from typing import Callable

from factory.backends import Request

Admit = Callable[[Request], bool]


def admit_all(request: Request) -> bool:
    return True


def take_admitted(pending: deque, admit: Admit | None, limit: int) -> list:
    """Up to `limit` items from the front of `pending` (requests, or (index, request)
    pairs), each admitted before it leaves; stops at the first refused, which stays first."""
    admit = admit or admit_all
    taken = []
    while pending and len(taken) < limit:
        item = pending[0]
        if not admit(item[1] if isinstance(item, tuple) else item):
            break
        taken.append(pending.popleft())
    return taken
