"""The pipeline is a list of steps, each with one `run(ctx, state)` over a batch. Recipes
compose them: TinyStories, textbook and instruct are [MakeSeeds, Generate, ExactDedup,
RejectTruncated, ScoreLikelihood, ApplyRules, Review, Decide] (the gates and the likelihood
signal before any review is paid for); a plugin's step implements `Step` (factory/steps/protocol.py,
docs/plugins.md); math swaps Generate for WriteProblems and adds SolveAndVerify (harder
variants: SuggestHarder makes the seed rows, WriteProblems("editor") the problems)."""
from factory.steps.context import NO_LINEAGE, Call, Context, add_drop, add_gate, add_signal, add_verdict, signal_row
from factory.steps.decide import Decide
from factory.steps.dedup import ExactDedup
from factory.steps.generate import Generate
from factory.steps.likelihood import ScoreLikelihood
from factory.steps.math import SolveAndVerify, SuggestHarder, WriteProblems
from factory.steps.review import Review
from factory.steps.rules import ApplyRules
from factory.steps.seeds import MakeSeeds, SeedDrop
from factory.steps.protocol import Step, StepError, check_steps
from factory.steps.state import STATE_FIELDS, BatchState
from factory.steps.truncation import RejectTruncated

TEXT_STEPS = (MakeSeeds, Generate, ExactDedup, RejectTruncated, ScoreLikelihood, ApplyRules, Review, Decide)

__all__ = ["NO_LINEAGE", "STATE_FIELDS", "TEXT_STEPS", "Step", "StepError", "add_gate", "add_signal", "check_steps",
           "signal_row", "ApplyRules", "BatchState", "Call", "Context", "Decide", "ExactDedup",
           "Generate", "MakeSeeds", "RejectTruncated", "Review", "ScoreLikelihood", "SeedDrop", "SolveAndVerify", "SuggestHarder", "WriteProblems",
           "add_drop", "add_verdict"]
