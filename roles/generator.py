"""Generator: writes one sample from a seed's variables."""
from __future__ import annotations

from dataclasses import dataclass

from roles.base import Drop, Role

# Under ~30 words a "story" from a 135M model is a refusal, a title or a fragment.
MIN_WORDS = 30


@dataclass(frozen=True)
class Story:
    text: str


class Generator(Role):
    name = "generator"
    version = 1

    def parse(self, row: dict, text: str) -> Story | Drop:
        story = text.strip()
        if not story:
            return Drop("empty output", text)
        words = len(story.split())
        if words < MIN_WORDS:
            return Drop(f"too short: {words} words (< {MIN_WORDS})", text)
        return Story(story)
