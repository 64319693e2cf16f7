"""The reference teacher: a scripted backend that writes the math recipe's solutions and
programs from the built-in generator's exact worked steps (factory/recipes/math_problems.py
MathProblem.worked). It serves three roles of the `math` recipe, with their built-in
templates: long_solver (every step in words, each intermediate result, a check that works
back from the answer to a number the problem gives, then "Final answer: N"), short_solver
(the equations, then "Final answer: N") and generator (a TinyGSM `simple_math_problem()`).
At wrong_rate 0 (the default) it is never wrong on a built-in problem, so a distillation
can study mixtures of long and short solutions where the embedded 135M model cannot solve
the problems (issue 12).

How it knows the problem: a request carries only rendered messages. The math recipe, in the
driver, registers each built-in seed it makes (`remember`: the question's sha256 -> (job
seed, index, family, steps), ~100 bytes each, so a million seeds hold ~100 MB at most; the
problem is regenerated on lookup in ~0.1 ms). The backend is marked remote so the executors
run it in the driver, where that registry lives (a Ray engine actor is another process and
would see an empty one); it makes no network call. The role is read from the request: each
of the three built-in templates is rendered once with a marker question, which gives its
system message and the text around the question, so a request is matched exactly and the
question cut out of it. The load-time `check` admits only those roles, those templates and
`source: builtin` (the only problems with worked steps); anything else is one line, exit 2.

Token counts are 0: no model read or wrote tokens (stats' per-role token columns measure
model work). Lineage records backend `reference`, model `math-worked-steps`, the writer's
version and the sha256 of this file, so a changed writer never reuses cached completions.

`wrong_rate` (solver roles only, default 0): on that seeded share of problems the long and
short solutions carry one arithmetic slip, propagated to the final answer
(reference_slip.py); the identity, and so every row's lineage and request key, then carries
wrong_rate and the slip writer's sha256. At 0 the identity is what it was before the field.
"""
from __future__ import annotations

import hashlib
import threading
import time
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

from factory.backends.base import Completion, ModelIdentity, Request, file_sha256
from factory.backends.reference_slip import slipped, slips

BACKEND = "reference"
MODEL = "math-worked-steps"
WRITER_VERSION = 1
RECIPE = "math"
# role -> the built-in template whose wording the writer matches
ROLES = {"long_solver": "math/long_cot@1", "short_solver": "math/short_cot@1", "generator": "math/program@1"}
SOLVERS = ("long_solver", "short_solver")  # the roles whose solutions wrong_rate may slip
_MARK = "\x00REFERENCE-QUESTION\x00"

_registry: dict[str, tuple[int, int, str, int]] = {}
_registry_lock = threading.Lock()


def _key(question: str) -> str:
    return hashlib.sha256(question.encode("utf-8", "surrogatepass")).hexdigest()


def remember(question: str, seed: int, index: int, family: str, steps: int) -> None:
    """The math recipe calls this for each built-in seed of a job that uses this backend."""
    with _registry_lock:
        _registry[_key(question)] = (seed, index, family, steps)


def problem_for(question: str):
    """The registered built-in problem whose question this is, or None."""
    found = registered_problem(question)
    return None if found is None else found[0]


def registered_problem(question: str):
    """(problem, job seed, seed index) of the registered built-in problem, or None."""
    from factory.recipes.math_problems import generate_problem

    found = _registry.get(_key(question))
    if found is None:
        return None
    seed, index, family, steps = found
    p = generate_problem(seed, index, family=family, steps=steps)
    return (p, seed, index) if p.question == question else None


# --- the writer -----------------------------------------------------------------------

def _text(x: Fraction) -> str:
    """Canonical number text (as the generator writes it, without thousands commas)."""
    if x.denominator == 1:
        return str(x.numerator)
    return format((Decimal(x.numerator) / Decimal(x.denominator)).normalize(), "f")


_VERB = {"+": "add {b} to {a}", "-": "subtract {b} from {a}", "*": "multiply {a} by {b}", "/": "divide {a} by {b}"}


def _origin(value: str, source: int | None, question: str) -> str:
    if source is not None:
        return f"{value} (the result of step {source + 1})"
    percent = _text(Fraction(value) * 100)
    if f"{percent}%" in question and Fraction(value) < 1:  # 25% is used as 0.25
        return f"{value} (the {percent}% in the problem, as a decimal)"
    return f"{value} (from the problem)"


def long_solution(p, slip: int | None = None) -> str:
    """slip: the step a slipped problem got wrong (reference_slip.slipped); its check repeats
    that step's slip backwards, as a solver who trusts its own equation would."""
    lines = [f"We need to find: {p.asks}", ""]
    last_sentence = None
    for i, s in enumerate(p.worked):
        lines.append(f"Step {i + 1}:")
        if not s.sentence:
            lines.append("The question asks for the result in other units, so we convert it.")
        elif s.sentence != last_sentence:
            lines.append(f'The problem says: "{s.sentence}"')
        else:
            lines.append("The same sentence needs one more calculation.")
        last_sentence = s.sentence or last_sentence
        verb = _VERB[s.op].format(a=_origin(s.a, s.a_from, p.question), b=_origin(s.b, s.b_from, p.question))
        lines.append(f"So we {verb}: {s.a} {s.op} {s.b} = {s.result}.")
        lines.append(f"After step {i + 1} we have {s.result}.")
        lines.append("")
    lines.append(f"Check: {_check(p, slip)}")
    lines.append(f"So the answer is {p.answer}.")
    lines.append(f"Final answer: {p.answer}")
    return "\n".join(lines)


# Undoing each operation recovers the operand that came from the step before (or, at the
# chain's start, a number given in the problem): a second computation that must land on it.
def _undo(op: str, side: str, c: Fraction, other: Fraction) -> tuple[str, Fraction]:
    if side == "a":  # a op other = c
        inverse = {"+": "-", "-": "+", "*": "/", "/": "*"}[op]
        value = {"+": c - other, "-": c + other, "*": c / other, "/": c * other}[op]
        return f"{_text(c)} {inverse} {_text(other)} = {_text(value)}", value
    if op in "+*":  # other op b = c, commutative
        inverse = "-" if op == "+" else "/"
        value = c - other if op == "+" else c / other
        return f"{_text(c)} {inverse} {_text(other)} = {_text(value)}", value
    value = other - c if op == "-" else other / c  # other - b = c, other / b = c
    return f"{_text(other)} {op} {_text(c)} = {_text(value)}", value


def _check(p, slip: int | None = None) -> str:
    steps = p.worked
    i, value, parts = len(steps) - 1, Fraction(p.answer), []
    while True:
        s = steps[i]
        side = "a" if s.a_from is not None or s.b_from is None else "b"
        other = Fraction(s.b if side == "a" else s.a)
        equation, value = _undo(s.op, side, value, other)
        if i == slip:  # undoing the slipped equation lands back on its written operand
            value = Fraction(s.a if side == "a" else s.b)
            equation = f"{equation.rsplit(' = ', 1)[0]} = {_text(value)}"
        parts.append(equation)
        source = s.a_from if side == "a" else s.b_from
        if source is None:
            given = s.a if side == "a" else s.b
            ok = "which is" if value == Fraction(given) else "which is NOT"
            return (f"working backwards from {p.answer}: " + ", then ".join(parts)
                    + f", {ok} the {given} given in the problem, so the answer is right.")
        i = source


def short_solution(p) -> str:
    return "\n".join([*p.solution, f"Final answer: {p.answer}"])


def program(p) -> str:
    question = p.question.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    lines = ["def simple_math_problem():", '    """', f"    {question}", '    """']
    for i, s in enumerate(p.worked):
        a = f"step{s.a_from + 1}" if s.a_from is not None else s.a
        b = f"step{s.b_from + 1}" if s.b_from is not None else s.b
        lines.append(f"    step{i + 1} = {a} {s.op} {b}")
    lines += [f"    result = step{len(p.worked)}", "    return result"]
    return "\n".join(lines) + "\n"


WRITERS = {"long_solver": long_solution, "short_solver": short_solution, "generator": program}


# --- matching a request to a role ------------------------------------------------------

@lru_cache(maxsize=1)
def _shapes() -> tuple[tuple[str, str, str, str], ...]:
    """(role, system message, user text before the question, after it) per built-in template."""
    from roles.templates import load_template

    out = []
    for role, ref in ROLES.items():
        messages = load_template(ref).render(question=_MARK)
        system = next((m["content"] for m in messages if m["role"] == "system"), "")
        before, after = messages[-1]["content"].split(_MARK)
        out.append((role, system, before, after))
    return tuple(out)


def role_and_question(messages) -> tuple[str, str] | None:
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    user = messages[-1]["content"] if messages else ""
    for role, sys_text, before, after in _shapes():
        if system == sys_text and user.startswith(before) and user.endswith(after) \
                and len(user) >= len(before) + len(after):
            return role, user[len(before):len(user) - len(after)]
    return None


def identity_for(ref) -> ModelIdentity:
    if ref.model != MODEL:
        raise ValueError(f"the reference backend has one model, {MODEL!r} (got {ref.model!r})")
    extra = {"writer_version": WRITER_VERSION, "scripted": True}
    rate = getattr(ref, "wrong_rate", 0.0)
    if rate:  # absent at 0: request keys and lineage of always-right jobs stay what they were
        extra |= {"wrong_rate": rate, "slip_sha256": file_sha256(Path(__file__).with_name("reference_slip.py"))}
    return ModelIdentity(backend=BACKEND, model=MODEL, file_sha256=file_sha256(Path(__file__)), extra=extra)


class UnknownProblem(RuntimeError):
    """A request the reference teacher cannot answer (not a registered built-in problem)."""
    exit_code = 1  # a runtime problem (factory/cli.py's codes)


class ReferenceBackend:
    remote = True  # runs in the driver, where the recipe's registry is (see the module docstring)

    def __init__(self, ref, threads: int = 1):
        self.identity = identity_for(ref)
        self.wrong_rate = getattr(ref, "wrong_rate", 0.0)

    @classmethod
    def check(cls, role_name: str, spec, recipe) -> None:
        """At load: only the math recipe's solver roles, with their built-in templates, on
        built-in problems (the only ones with worked steps). Raises ValueError (one line)."""
        if recipe.name != RECIPE or role_name not in ROLES:
            raise ValueError(f"the reference backend serves only the math recipe's roles {', '.join(ROLES)} "
                             f"(got role {role_name!r} of recipe {recipe.name!r})")
        source = (spec.options or {}).get("source", "builtin")
        if source != "builtin":
            raise ValueError(f"the reference backend needs options.source: builtin (only built-in problems have "
                             f"worked steps), got {source!r}")
        template = spec.roles[role_name].template
        if template != ROLES[role_name]:
            raise ValueError(f"the reference backend writes for the template {ROLES[role_name]} of role {role_name}, "
                             f"got {template!r}")
        identity_for(spec.roles[role_name])
        if any(ref.wrong_rate for ref in spec.roles[role_name].models()) and role_name not in SOLVERS:
            raise ValueError(f"wrong_rate is read only on the solver roles {', '.join(SOLVERS)} (a slip is a wrong "
                             f"step in a written solution), not on {role_name!r}")

    def generate(self, requests: list[Request]) -> list[Completion]:
        return [self._one(r) for r in requests]

    def _one(self, request: Request) -> Completion:
        start = time.perf_counter()
        found = role_and_question(request.messages)
        if found is None:
            raise UnknownProblem("reference backend: the request is not one of the math templates "
                                 f"{', '.join(ROLES.values())}")
        role, question = found
        registered = registered_problem(question)
        if registered is None:
            raise UnknownProblem(f"reference backend: no registered built-in problem for the question "
                                 f"{question[:80]!r} (the math recipe registers its built-in seeds in the driver)")
        p, seed, index = registered
        if role in SOLVERS and slips(self.wrong_rate, seed, index):
            p, step = slipped(p, seed, index)
            text = long_solution(p, step) if role == "long_solver" else short_solution(p)
        else:
            text = WRITERS[role](p)
        return Completion(request.key, text, 0, 0, time.perf_counter() - start)
