"""TinyStories-style recipe: seeds are one verb, one noun, one adjective from the simple
vocabulary plus a random subset of story features; deterministic in (job seed, index)."""
from __future__ import annotations

from factory.recipes.base import RoleDef, TextRecipe, rng_for
from factory.recipes.vocabulary import load_vocabulary, vocabulary_check
from roles import Adjudicator, Generator, StoryReviewer

FEATURES = ("Dialogue", "BadEnding", "MoralValue", "Twist", "Foreshadowing", "Conflict")
SEED_VARIABLES = frozenset({"verb", "noun", "adjective", "features"})


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
    description = "short stories for 3-4 year olds from seed words and story features (TinyStories)"
    distill_task = "stories"  # factory distill task: stories trains a tiny LM on the accepted texts
    roles = {
        "generator": RoleDef(lambda t, r: Generator(t), "tinystories/generator@1", SEED_VARIABLES,
                             {"max_tokens": 300}),
        "reviewer": RoleDef(lambda t, r: StoryReviewer(t), "tinystories/reviewer@1", SEED_VARIABLES | {"story"},
                            {"temperature": 0.7, "max_tokens": 160}),
        "adjudicator": RoleDef(lambda t, r: Adjudicator(t), "tinystories/adjudicator@1",
                               SEED_VARIABLES | {"story", "reviews"}, {"temperature": 0.2, "max_tokens": 120}),
    }

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

    @classmethod
    def rule_signals(cls, checks: dict | None) -> list[float]:
        if not checks:
            return []
        seed_words = [bool(checks[k]) for k in ("has_verb", "has_noun", "has_adjective") if k in checks]
        return [1.0 - float(checks["out_of_vocabulary_share"]), sum(seed_words) / len(seed_words)]

    def review_variables(self, seed: dict, sample: dict) -> dict:
        return {**seed, "story": sample["text"]}
