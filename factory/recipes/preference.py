"""Preference pairs (UltraFeedback style) for DPO: for each prompt the Generator writes n
candidate responses, Reviewers score each, the best and the worst make a chosen/rejected
pair when their score margin is large enough; exported as prompt/chosen/rejected (TRL's
DPOTrainer format)."""
from __future__ import annotations

from pydantic import Field

from factory.recipes.base import RoleDef, Recipe
from factory.recipes.personas import SEED_VARIABLES, PersonaOptions, persona_seed
from factory.steps import ExactDedup, MakeSeeds
from factory.steps.preference import Candidates, JudgePairs, PickPairs, ReviewCandidates, WritePrompts
from roles import Generator, PromptWriter, ResponseReviewer


class PreferenceOptions(PersonaOptions):
    candidates: int = Field(3, ge=2, le=8, description="responses written per prompt")
    min_margin: float = Field(1.0, ge=0, le=10, description="chosen - rejected mean score needed to keep a pair")


class Preference(Recipe):
    name = "preference"
    min_reviewers = 1  # chosen/rejected are picked by the reviewers' scores
    description = "prompt/chosen/rejected pairs: n candidates per prompt scored by reviewers (DPO)"
    Options = PreferenceOptions
    roles = {
        "prompt_writer": RoleDef(lambda t, r: PromptWriter(t), "preference/prompt_writer@1", SEED_VARIABLES,
                                 {"temperature": 0.8, "max_tokens": 100}),
        # a higher temperature spreads the candidates, so pairs have a margin to find
        "generator": RoleDef(lambda t, r: Generator(t, min_words=3), "preference/responder@1",
                             frozenset({"instruction"}), {"temperature": 1.0, "max_tokens": 200}),
        "reviewer": RoleDef(lambda t, r: ResponseReviewer(t), "instruct/reviewer@1",
                            SEED_VARIABLES | {"instruction", "response"}, {"temperature": 0.7, "max_tokens": 120}),
    }
    sample_noun = "prompt"
    export_kind = "pairs"

    def steps(self) -> list:
        return [MakeSeeds(), WritePrompts(), Candidates(), ReviewCandidates(), PickPairs(), ExactDedup(),
                JudgePairs()]

    def make_seed(self, index: int) -> dict:
        return persona_seed(self.options, self.spec.seed, index)

    @classmethod
    def export_record(cls, row: dict) -> dict:
        pair = row["payload"]
        return {"prompt": row["text"], "chosen": pair["chosen"], "rejected": pair["rejected"]}
