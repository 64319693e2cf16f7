"""Instruction-following SFT data: persona x task-type seeds; the Generator writes an
instruction and its response; Reviewers score helpfulness, correctness and
instruction-following; exported as chat `messages` (what TRL's SFTTrainer reads)."""
from __future__ import annotations

from factory.recipes.base import RoleDef, TextRecipe
from factory.recipes.personas import SEED_VARIABLES, PersonaOptions, persona_seed
from roles import Adjudicator, InstructionWriter, ResponseReviewer

PAIR = SEED_VARIABLES | {"instruction", "response"}


class Instruct(TextRecipe):
    name = "instruct"
    description = "instruction/response pairs from persona x task seeds, exported as chat messages (SFT)"
    Options = PersonaOptions
    roles = {
        "generator": RoleDef(lambda t, r: InstructionWriter(t), "instruct/generator@1", SEED_VARIABLES,
                             {"temperature": 0.8, "max_tokens": 320}),
        "reviewer": RoleDef(lambda t, r: ResponseReviewer(t), "instruct/reviewer@1", PAIR,
                            {"temperature": 0.7, "max_tokens": 120}),
        "adjudicator": RoleDef(lambda t, r: Adjudicator(t), "instruct/adjudicator@1", PAIR | {"reviews"},
                               {"temperature": 0.2, "max_tokens": 100}),
    }
    export_kind = "chat"

    def make_seed(self, index: int) -> dict:
        return persona_seed(self.options, self.spec.seed, index)

    def sample_of(self, seed: dict, parsed) -> tuple[str, dict]:
        pair = {"instruction": parsed.instruction.strip(), "response": parsed.response.strip()}
        return f"{pair['instruction']}\n\n{pair['response']}", pair

    def review_variables(self, seed: dict, sample: dict) -> dict:
        return {**seed, **sample["payload"]}

    @classmethod
    def export_record(cls, row: dict) -> dict:
        pair = row["payload"]
        return {"messages": [{"role": "user", "content": pair["instruction"]},
                             {"role": "assistant", "content": pair["response"]}]}
