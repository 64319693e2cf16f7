"""How a training row and an evaluation prompt are written as text: one format for every
student, so that what is trained is what is asked. Plain text, not a chat template: the
tiny student has never seen one, and the same prompt then works for every kind."""
from __future__ import annotations


def math_prompt(question: str) -> str:
    """The part of a math row the loss ignores (and the whole evaluation prompt)."""
    return f"Question: {question.strip()}\nAnswer:"


def math_target(solution: str) -> str:
    """The part of a math row the loss is on; the tokenizer's EOS is appended after it."""
    return " " + solution.strip()


def story_prompt(opening: str) -> str:
    """Stories are trained on whole (empty prompt); evaluation continues an opening."""
    return opening.strip()
