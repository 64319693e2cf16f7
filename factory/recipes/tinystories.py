"""TinyStories-style recipe: seeds are one verb, one noun, one adjective from the simple
vocabulary plus a random subset of story features; deterministic in (job seed, index)."""
from __future__ import annotations

from factory.recipes.base import TextRecipe, rng_for
from factory.recipes.vocabulary import load_vocabulary, vocabulary_check

FEATURES = ("Dialogue", "BadEnding", "MoralValue", "Twist", "Foreshadowing", "Conflict")


def make_seed(job_seed: int, index: int) -> dict:
    vocab = load_vocabulary()
    rng = rng_for(job_seed, index)
    # TinyStories drew a random subset of features per story; up to 3 keeps the prompt short
    # enough for a 135M model to follow at least some of them.
    features = sorted(rng.sample(FEATURES, rng.randint(0, 3)), key=FEATURES.index)
    return {
        "verb": rng.choice(vocab.verbs),
        "noun": rng.choice(vocab.nouns),
        "adjective": rng.choice(vocab.adjectives),
        "features": features,
    }


def rule_checks(seed: dict, text: str) -> dict:
    return vocabulary_check(text, seed["verb"], seed["noun"], seed["adjective"])


class TinyStories(TextRecipe):
    name = "tinystories"

    def make_seed(self, index: int) -> dict:
        return make_seed(self.spec.seed, index)

    def rule_checks(self, seed: dict, text: str) -> dict:
        return rule_checks(seed, text)

    def rule_reject(self, checks: dict) -> tuple[str, str] | None:
        limit = self.spec.decision.max_out_of_vocabulary
        share = checks["out_of_vocabulary_share"]
        if limit is None or share <= limit:
            return None
        return "vocabulary", f"{share:.1%} of words outside the vocabulary > {limit:.1%}"

    def review_variables(self, seed: dict, text: str) -> dict:
        return {**seed, "story": text}
