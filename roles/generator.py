"""Generator: writes one sample from a seed's variables."""
from __future__ import annotations

from dataclasses import dataclass

from roles.base import Drop, Role, text_problem

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
        problem = text_problem(story)  # too long, mostly control characters, or not valid Unicode
        if problem:
            return Drop(problem, text)
        words = len(story.split())
        if words < self.min_words:
            return Drop(f"too short: {words} words (< {self.min_words})", text)
        return Story(story)
