"""The state one batch carries from step to step. Steps add rows to `batch` (never change
a row once added) and hand the items still in play to the next step."""
from __future__ import annotations

from dataclasses import dataclass, field

from stores import BatchRows


@dataclass
class BatchState:
    batch: BatchRows
    seeds: dict[int, dict] = field(default_factory=dict)        # seed index -> seed variables
    made: dict[int, dict] = field(default_factory=dict)         # seed index -> a sample row not yet added
    parsed: dict[int, object] = field(default_factory=dict)     # seed index -> the generator's parsed output
    samples: dict[int, dict] = field(default_factory=dict)      # seed index -> sample row added and still in play
    to_review: dict[int, tuple[str, dict]] = field(default_factory=dict)  # -> (sample id, reviewer variables)
    reviews: dict[int, list] = field(default_factory=dict)      # seed index -> parsed ReviewResults
    extra: dict = field(default_factory=dict)                   # recipe-specific hand-offs between its steps

    @property
    def indices(self) -> list[int]:
        return self.batch.seed_indices


# The fields of BatchState a step may declare it reads or writes (Step.reads / Step.writes).
STATE_FIELDS = ("seeds", "made", "parsed", "samples", "to_review", "reviews")
