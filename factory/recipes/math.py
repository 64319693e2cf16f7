"""Math with a verifier (TinyGSM, Orca-Math): seed problems from the built-in generator,
a GSM8K-format file, or new problems the problem_writer writes after a seed problem; k
programs run in the sandbox and a long and a short solution, checked by the verifier."""
from __future__ import annotations

from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from factory.recipes.base import Recipe, RoleDef, SeedDrop, rng_for
from factory.recipes.math_problems import FAMILIES, generate_problem
from factory.recipes.seed_files import jsonl_record, read_lines
from factory.steps import Decide, ExactDedup, MakeSeeds, Review, SolveAndVerify, WriteProblems
from roles import Adjudicator, ProblemReviewer, ProblemWriter, ProgramWriter, Solver
from roles.answers import gsm8k_gold


class MathOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    source: Literal["builtin", "file", "generated"] = Field(
        "builtin", description="builtin: the word-problem generator; file: a GSM8K-format JSONL; "
        "generated: the problem_writer writes a new problem after each seed problem")
    seed_file: str | None = Field(None, description="GSM8K-format JSONL (question, answer ending in '#### n')")
    families: list[str] | None = Field(None, min_length=1, description="builtin families; default: all")
    max_steps: int = Field(4, ge=1, le=6, description="builtin difficulty: 1..max_steps arithmetic steps")
    programs: int = Field(3, ge=1, le=16, description="programs sampled per problem; their majority decides "
                          "where there is no ground truth")

    @model_validator(mode="after")
    def _needs_file(self) -> "MathOptions":
        if self.source == "file" and not self.seed_file:
            raise ValueError("source 'file' needs seed_file")
        if self.source == "builtin" and self.seed_file:
            raise ValueError("seed_file is read only when source is 'file' or 'generated'")
        if self.families:
            unknown = [f for f in self.families if f not in FAMILIES]
            if unknown:
                raise ValueError(f"unknown family {unknown[0]!r}; families: {', '.join(FAMILIES)}")
        return self


QUESTION = frozenset({"question"})


class Math(Recipe):
    name = "math"
    description = "word problems with k sandboxed programs, long and short solutions, verified answers (TinyGSM)"
    Options = MathOptions
    roles = {
        "problem_writer": RoleDef(lambda t, r: ProblemWriter(t), "math/problem_writer@1",
                                  frozenset({"seed_question"}), {"temperature": 0.8, "max_tokens": 160}),
        "generator": RoleDef(lambda t, r: ProgramWriter(t), "math/program@1", QUESTION,
                             {"temperature": 0.7, "max_tokens": 320}),
        "long_solver": RoleDef(lambda t, r: Solver(t, "long_solver"), "math/long_cot@1", QUESTION,
                               {"temperature": 0.7, "max_tokens": 512}),
        "short_solver": RoleDef(lambda t, r: Solver(t, "short_solver"), "math/short_cot@1", QUESTION,
                                {"temperature": 0.7, "max_tokens": 160}),
        "reviewer": RoleDef(lambda t, r: ProblemReviewer(t), "math/reviewer@1", QUESTION | {"reference_answer"},
                            {"temperature": 0.7, "max_tokens": 120}),
        "adjudicator": RoleDef(lambda t, r: Adjudicator(t), "math/adjudicator@1",
                               QUESTION | {"reference_answer", "reviews"}, {"temperature": 0.2, "max_tokens": 120}),
    }
    decision = {"accept_mean": 6.0, "max_spread": 3.0, "reject_mean": 3.0}
    sample_noun = "problem"

    def steps(self) -> list:
        return [MakeSeeds(), WriteProblems(), ExactDedup(), SolveAndVerify(), Review(), Decide()]

    @cached_property
    def file_lines(self) -> tuple[str, ...]:
        return read_lines(self.options.seed_file) if self.options.seed_file else ()

    def capacity(self) -> int | None:
        return len(self.file_lines) if self.options.seed_file else None

    def _builtin(self, index: int) -> dict:
        rng = rng_for(self.spec.seed, index, "math")
        family = rng.choice(self.options.families or FAMILIES)
        steps = rng.randint(1, min(self.options.max_steps, 6 if family == "multi_step" else 4))
        p = generate_problem(self.spec.seed, index, family=family, steps=steps)
        return {"question": p.question, "ground_truth": p.answer, "origin": f"builtin:{p.family}:{p.steps}"}

    def _from_file(self, index: int) -> dict | SeedDrop:
        path, line = self.options.seed_file, self.file_lines[index]
        record = jsonl_record(path, index + 1, line, ("question", "answer"))
        if isinstance(record, str):
            return SeedDrop(record, line)
        if "####" not in record["answer"]:
            return SeedDrop(f"{path}:{index + 1}: answer has no '#### n' final line", line)
        return {"question": record["question"].strip(), "ground_truth": gsm8k_gold(record["answer"]),
                "origin": f"file:{index + 1}"}

    def make_seed(self, index: int) -> dict | SeedDrop:
        seed = self._from_file(index) if self.options.seed_file else self._builtin(index)
        if isinstance(seed, SeedDrop) or self.options.source != "generated":
            return seed
        # A written problem has no ground truth: only verified solutions give its answer.
        return {"seed_question": seed["question"], "question": None, "ground_truth": None,
                "origin": f"generated-after:{seed['origin']}"}

    @classmethod
    def export_record(cls, row: dict) -> dict:
        return {"question": row["text"], "answer": row["answer"], "program": row["program"],
                "long_solution": row["long_solution"], "short_solution": row["short_solution"]}
