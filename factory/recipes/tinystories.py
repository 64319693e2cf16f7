"""TinyStories-style recipe: seeds are one verb, one noun, one adjective from the simple
vocabulary plus a random subset of story features; deterministic in (job seed, index)."""
from __future__ import annotations

import hashlib
import random

from factory.recipes.vocabulary import load_vocabulary, vocabulary_check

FEATURES = ("Dialogue", "BadEnding", "MoralValue", "Twist", "Foreshadowing", "Conflict")


def rng_for(job_seed: int, index: int, salt: str = "seed") -> random.Random:
    # sha256, not hash(): Python salts str hashes per process, and seeds must survive restarts.
    digest = hashlib.sha256(f"{salt}:{job_seed}:{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


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
