"""Math with a verifier (TinyGSM, Orca-Math): seed problems from the built-in generator,
a GSM8K-format file, or new problems the problem_writer writes after a seed problem."""
from __future__ import annotations

from functools import cached_property

from factory.recipes.base import Recipe, SeedDrop, rng_for
from factory.recipes.math_problems import FAMILIES, generate_problem
from factory.recipes.seed_files import jsonl_record, read_lines
from factory.verify.answers import gsm8k_gold


class Math(Recipe):
    name = "math"

    @cached_property
    def options(self):
        return self.spec.math

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
