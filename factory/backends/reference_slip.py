"""Deliberate slips for the reference teacher (`wrong_rate`, issue 22 item 4): on a seeded
share of problems, one step's arithmetic is off and every later step is recomputed from the
wrong value, so the final answer is wrong the way a careless solver's would be, and the
verifier (which compares the final answer with the generator's exact one) must catch it.

Which problems slip: u = a hash of (job seed, seed index) read as a number in [0, 1); the
problem slips when u < wrong_rate. So the long and short solutions of one problem slip
together, at the same step by the same amount, and a problem that slips at rate 0.2 also
slips at 0.3 (the sets are nested: two rates compare on shared problems).

The slip: a result off by 1, 2 or 10 in either direction (a carry or a dropped digit), at a
step drawn from the same hash. A candidate is kept only if the whole recomputed chain stays
the generator's kind of number (non-negative, at most 2 decimals, no division by 0) and the
final answer changes; the last step + 1 always qualifies, so every drawn problem slips."""
from __future__ import annotations

import hashlib
import random
from dataclasses import replace
from fractions import Fraction

DELTAS = (1, -1, 2, -2, 10, -10)
_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
        "/": lambda a, b: a / b if b else None}


def draw(seed: int, index: int) -> float:
    """The problem's number in [0, 1): it slips when this is below wrong_rate."""
    h = hashlib.sha256(f"reference-slip:{seed}:{index}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2 ** 64


def slips(wrong_rate: float, seed: int, index: int) -> bool:
    return wrong_rate > 0 and draw(seed, index) < wrong_rate


def _text(x: Fraction) -> str:
    from factory.backends.reference import _text as text  # canonical number text, one definition

    return text(x)


def _clean(x: Fraction | None) -> bool:
    return x is not None and x >= 0 and (x * 100).denominator == 1


def _recompute(worked, step: int, wrong: Fraction):
    """The worked steps with step's result replaced by wrong and every later step recomputed
    from it; None when a value leaves the generator's kind of number."""
    values = [Fraction(s.result) for s in worked]
    values[step] = wrong
    out = list(worked[:step]) + [replace(worked[step], result=_text(wrong))]
    for s in worked[step + 1:]:
        a = values[s.a_from] if s.a_from is not None else Fraction(s.a)
        b = values[s.b_from] if s.b_from is not None else Fraction(s.b)
        result = _OPS[s.op](a, b)
        if not _clean(result):
            return None
        values[len(out)] = result
        out.append(replace(s, a=_text(a), b=_text(b), result=_text(result)))
    return tuple(out)


def slipped(p, seed: int, index: int):
    """(the problem as a careless solver works it, the index of the slipped step). The
    problem's question is unchanged; its answer, solution lines and worked steps carry the
    slip. The writers (reference.py) write it like any other problem."""
    rng = random.Random(f"reference-slip-step:{seed}:{index}")
    steps = list(range(len(p.worked)))
    rng.shuffle(steps)
    deltas = list(DELTAS)
    rng.shuffle(deltas)
    # the last step + 1 always qualifies (its result is >= 0 with <= 2 decimals, and nothing follows)
    for step in [*steps, len(p.worked) - 1]:
        for delta in deltas:
            wrong = Fraction(p.worked[step].result) + delta
            if not _clean(wrong):
                continue
            worked = _recompute(p.worked, step, wrong)
            if worked is None or Fraction(worked[-1].result) == Fraction(p.answer):
                continue
            answer = worked[-1].result
            lines = tuple(f"{s.a} {s.op} {s.b} = {s.result}" for s in worked)
            return replace(p, answer=answer, solution=lines, worked=worked), step
    raise AssertionError(f"no slip found for {p.question!r}")  # unreachable: last step + 1 qualifies
