"""Math roles (TinyGSM / Orca-Math): a problem writer, a program writer, and solvers that
write natural-language solutions ending in one final-answer line."""
from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from roles.answers import extract_final_answer
from roles.base import Drop, Role, parse_json_model, text_problem
from roles.solver_json import json_answer

ENTRY = "simple_math_problem"
_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.S)


@dataclass(frozen=True)
class Program:
    code: str


@dataclass(frozen=True)
class Solution:
    text: str
    answer: str


@dataclass(frozen=True)
class NewProblem:
    question: str


def _function_only(code: str) -> str:
    """From `def simple_math_problem` to the end of its body: drops prose around it."""
    lines = code[code.index(f"def {ENTRY}"):].splitlines()
    body = [lines[0]]
    for line in lines[1:]:
        if line.strip() and not line[0].isspace():
            break  # back at column 0: the function has ended
        body.append(line)
    return "\n".join(body).rstrip() + "\n"


class ProgramWriter(Role):
    name = "generator"
    version = 1

    def parse(self, row: dict, text: str) -> Program | Drop:
        problem = text_problem(text)  # a lone surrogate would not even reach the sandbox's pipe
        if problem:
            return Drop(problem, text)
        blocks = [b for b in _FENCE.findall(text) if f"def {ENTRY}" in b]
        source = blocks[0] if blocks else text
        if f"def {ENTRY}" not in source:
            return Drop(f"no `def {ENTRY}():` in the output", text)
        return Program(_function_only(source))


class Solver(Role):
    """long_solver and short_solver share this parse; their templates differ."""

    version = 1

    def __init__(self, template: str, name: str):
        super().__init__(template)
        self.name = name

    def parse(self, row: dict, text: str) -> Solution | Drop:
        problem = text_problem(text)
        if problem:
            return Drop(problem, text)
        answer, wrong_shape = json_answer(text)  # JSON: its answer field or a drop, no number mining
        if wrong_shape:
            return Drop(wrong_shape, text)
        if answer is None:
            answer = extract_final_answer(text)
        if answer is None:
            return Drop("no final answer in the solution", text)
        return Solution(text.strip(), answer)


class WrittenProblem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    question: str = Field(min_length=20, max_length=600)


class ProblemWriter(Role):
    name = "problem_writer"
    version = 1
    output = WrittenProblem

    def parse(self, row: dict, text: str) -> NewProblem | Drop:
        parsed = parse_json_model(self.output, text)
        if isinstance(parsed, Drop):
            return parsed
        if not re.search(r"\d", parsed.question):
            return Drop("the new problem has no numbers", text)
        return NewProblem(parsed.question.strip())


# Orca-Math's harder variants: a Suggester says how to make an accepted problem harder,
# an Editor rewrites the problem that way; the result is solved and verified like any
# written problem (no ground truth: the programs' majority decides).


@dataclass(frozen=True)
class Suggestion:
    text: str


class HarderSuggestion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # 300 characters: one or two sentences ("add a step: she gives away a third"); a longer
    # answer from a small model is a rewritten problem or a solution, not a suggestion.
    suggestion: str = Field(min_length=10, max_length=300)


class Suggester(Role):
    name = "suggester"
    version = 1
    output = HarderSuggestion

    def parse(self, row: dict, text: str) -> Suggestion | Drop:
        parsed = parse_json_model(self.output, text)
        if isinstance(parsed, Drop):
            return parsed
        suggestion = " ".join(parsed.suggestion.split())
        if len(suggestion) < 10:
            return Drop("the suggestion is blank", text)
        return Suggestion(suggestion)


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.lower().split()) == " ".join(b.lower().split())


class Editor(ProblemWriter):
    """The parent problem rewritten after the suggestion; the ProblemWriter's output and
    checks, and the rewrite must differ from the parent."""

    name = "editor"
    version = 1

    def parse(self, row: dict, text: str) -> NewProblem | Drop:
        parsed = super().parse(row, text)
        if isinstance(parsed, NewProblem) and _same_text(parsed.question, row.get("parent_question") or ""):
            return Drop("the edited problem is the parent problem unchanged", text)
        return parsed
