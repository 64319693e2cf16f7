"""Generator: writes one sample from a seed's variables."""
from __future__ import annotations

from dataclasses import dataclass

from roles.base import Drop, Role, unprintable_share

# Text that is mostly control, format or unassigned characters is garbage whatever its length.
MAX_UNPRINTABLE_SHARE = 0.2
# Under ~30 words a "story" from a 135M model is a refusal, a title or a fragment.
MIN_WORDS = 30


@dataclass(frozen=True)
class Story:
    text: str


class Generator(Role):
    name = "generator"
    version = 1

    def __init__(self, template: str, min_words: int = MIN_WORDS):
        super().__init__(template)
        self.min_words = min_words

    def parse(self, row: dict, text: str) -> Story | Drop:
        story = text.strip()
        if not story:
            return Drop("empty output", text)
        share = unprintable_share(story)
        if share > MAX_UNPRINTABLE_SHARE:
            return Drop(f"mostly control or non-printing characters ({share:.0%})", text)
        words = len(story.split())
        if words < self.min_words:
            return Drop(f"too short: {words} words (< {self.min_words})", text)
        return Story(story)
