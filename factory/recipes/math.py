"""Math with a verifier (TinyGSM, Orca-Math): seed problems from the built-in generator,
a GSM8K-format file, new problems the problem_writer writes after a seed problem, or
harder variants of another job's accepted problems (Orca-Math's Suggester and Editor); k
programs run in the sandbox and a long and a short solution, checked by the verifier."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from factory.recipes.base import Recipe, RoleDef, SeedDrop, rng_for
from factory.recipes.math_problems import FAMILIES, generate_problem
from factory.recipes.seed_files import jsonl_record, read_lines
from factory.steps import Decide, ExactDedup, MakeSeeds, Review, SolveAndVerify, SuggestHarder, WriteProblems
from roles import Adjudicator, Editor, ProblemReviewer, ProblemWriter, ProgramWriter, Solver, Suggester
from roles.answers import gsm8k_gold
from stores.connection import open_database
from stores.jobs import decided_accepts, job_recipe
from stores.stats import UnknownJob, resolve_job


class MathOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    source: Literal["builtin", "file", "generated", "harder"] = Field(
        "builtin", description="builtin: the word-problem generator; file: a GSM8K-format JSONL; "
        "generated: the problem_writer writes a new problem after each seed problem; harder: the suggester "
        "and the editor make a harder variant of each accepted problem of parent_job (Orca-Math)")
    seed_file: str | None = Field(None, description="GSM8K-format JSONL (question, answer ending in '#### n')")
    parent_job: str | None = Field(None, min_length=1, description="source harder: a math job (name or "
                                   "fingerprint) in this job's db; seed i is its i-th accepted problem")
    families: list[str] | None = Field(None, min_length=1, description="builtin families; default: all")
    max_steps: int = Field(4, ge=1, le=6, description="builtin difficulty: 1..max_steps arithmetic steps")
    programs: int = Field(3, ge=0, le=16, description="programs sampled per problem; their majority decides "
                          "where there is no ground truth; 0 (builtin or file only): no program and no sandbox, "
                          "the ground truth checks the solutions (~5x faster per problem: docs/benchmarks.md)")

    @model_validator(mode="after")
    def _needs_file(self) -> "MathOptions":
        if self.source == "file" and not self.seed_file:
            raise ValueError("source 'file' needs seed_file")
        if self.source in ("builtin", "harder") and self.seed_file:
            raise ValueError("seed_file is read only when source is 'file' or 'generated'")
        if self.source == "harder" and not self.parent_job:
            raise ValueError("source 'harder' needs parent_job (a math job in this job's db)")
        if self.programs == 0 and self.source not in ("builtin", "file"):
            raise ValueError("programs 0 needs a ground truth: source 'builtin' or 'file'")
        if self.source != "harder" and self.parent_job:
            raise ValueError("parent_job is read only when source is 'harder'")
        if self.families:
            unknown = [f for f in self.families if f not in FAMILIES]
            if unknown:
                raise ValueError(f"unknown family {unknown[0]!r}; families: {', '.join(FAMILIES)}")
        return self


QUESTION = frozenset({"question"})
PARENT = frozenset({"parent_question"})


def accepted_problems(db: Path, parent_job: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """(the parent job's fingerprint, its accepted problems as (sample id, question) by seed
    index), read on a read-only connection: a parent job that is not there writes nothing."""
    where = "options.parent_job"
    if not db.is_file():
        raise UnknownJob(f"{where}: no database at {db} (the database this run writes) to take job "
                         f"{parent_job!r}'s problems from")
    con = open_database(db, read_only=True)
    try:
        try:
            job = resolve_job(con, parent_job)
        except UnknownJob as err:
            raise UnknownJob(f"{where}: {err} (in {db})") from None
        recipe = job_recipe(con, job)
        if recipe != "math":
            raise UnknownJob(f"{where}: job {parent_job!r} ({job}) in {db} is a {recipe} job; the parents of "
                             "harder variants are accepted math problems")
        rows = decided_accepts(con, job)
    finally:
        con.close()
    if not rows:
        raise UnknownJob(f"{where}: job {parent_job!r} ({job}) in {db} has no accepted problems yet")
    return job, tuple(rows)


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
        "suggester": RoleDef(lambda t, r: Suggester(t), "math/suggester@1", PARENT,
                             {"temperature": 0.8, "max_tokens": 120}),
        "editor": RoleDef(lambda t, r: Editor(t), "math/editor@1", PARENT | {"suggestion"},
                          {"temperature": 0.7, "max_tokens": 200}),
    }
    decision = {"accept_mean": 6.0, "max_spread": 3.0, "reject_mean": 3.0}
    sample_noun = "problem"
    distill_task = "math"  # factory distill task: math trains on its long and short solutions

    def steps(self) -> list:
        if self.options.source == "harder":  # the suggester's answer is part of the seed row
            return [SuggestHarder(), WriteProblems("editor"), ExactDedup(), SolveAndVerify(), Review(), Decide()]
        return [MakeSeeds(), WriteProblems(), ExactDedup(), SolveAndVerify(), Review(), Decide()]

    @cached_property
    def file_lines(self) -> tuple[str, ...]:
        return read_lines(self.options.seed_file) if self.options.seed_file else ()

    @property
    def parents_db(self) -> Path:
        # The database the run writes (the pipeline sets it, --db included), else the job's db.
        return Path(self.database or self.spec.db)

    @cached_property
    def parents(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        return accepted_problems(self.parents_db, self.options.parent_job)

    def capacity(self) -> int | None:
        if self.options.source == "harder":
            return len(self.parents[1])
        return len(self.file_lines) if self.options.seed_file else None

    def _builtin(self, index: int) -> dict:
        rng = rng_for(self.spec.seed, index, "math")
        family = rng.choice(self.options.families or FAMILIES)
        steps = rng.randint(1, min(self.options.max_steps, 6 if family == "multi_step" else 4))
        p = generate_problem(self.spec.seed, index, family=family, steps=steps)
        if self.uses_reference_teacher:
            # The scripted teacher reads a request's messages only: it finds the worked steps
            # through this registry (question -> seed, index), filled here in the driver,
            # where it runs (factory/backends/reference.py).
            from factory.backends.reference import remember

            remember(p.question, self.spec.seed, index, family, steps)
        return {"question": p.question, "ground_truth": p.answer, "origin": f"builtin:{p.family}:{p.steps}"}

    @cached_property
    def uses_reference_teacher(self) -> bool:
        return any(ref.backend == "reference" for role in self.spec.roles.values() for ref in role.models())

    def _from_file(self, index: int) -> dict | SeedDrop:
        path, line = self.options.seed_file, self.file_lines[index]
        record = jsonl_record(path, index + 1, line, ("question", "answer"))
        if isinstance(record, str):
            return SeedDrop(record, line)
        if "####" not in record["answer"]:
            return SeedDrop(f"{path}:{index + 1}: answer has no '#### n' final line", line)
        return {"question": record["question"].strip(), "ground_truth": gsm8k_gold(record["answer"]),
                "origin": f"file:{index + 1}"}

    def _harder(self, index: int) -> dict:
        job, problems = self.parents
        sample, question = problems[index]
        # No ground truth: the programs' majority decides, as for a written problem.
        return {"parent_job": job, "parent_sample_id": sample, "parent_question": question, "question": None,
                "ground_truth": None, "origin": f"harder-of:{sample}"}

    def make_seed(self, index: int) -> dict | SeedDrop:
        if self.options.source == "harder":
            return self._harder(index)
        seed = self._from_file(index) if self.options.seed_file else self._builtin(index)
        if isinstance(seed, SeedDrop) or self.options.source != "generated":
            return seed
        # A written problem has no ground truth: only verified solutions give its answer.
        return {"seed_question": seed["question"], "question": None, "ground_truth": None,
                "origin": f"generated-after:{seed['origin']}"}

    @classmethod
    def probe_corruptions(cls) -> dict:
        # The question is the sample: its reference answer stays, so a changed number makes
        # a problem that answer no longer solves.
        from factory.recipes.corruptions import changed_number

        return {**super().probe_corruptions(), "number_changed": changed_number}

    @classmethod
    def export_record(cls, row: dict) -> dict:
        return {"question": row["text"], "answer": row["answer"], "program": row["program"],
                "long_solution": row["long_solution"], "short_solution": row["short_solution"]}
