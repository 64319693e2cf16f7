"""TinyStories-style recipe: seeds are one verb, one noun, one adjective from the simple
vocabulary plus a random subset of story features; deterministic in (job seed, index)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from factory.recipes import text_checks
from factory.recipes.base import RoleDef, TextRecipe, rng_for
from factory.recipes.text_checks import NGRAM, repeated_ngram_ratio, repetition_reject
from factory.recipes.vocabulary import load_vocabulary, vocabulary_check, words_of
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


def rule_checks(seed: dict, text: str, prompt: str = "") -> dict:
    """The story's rule checks. Repetition, loops and prompt echo are checked because a
    likelihood rewards them (a repeated sentence scores -0.4 nats/token under SmolLM2 against
    -2.5 for a plain one); `prompt` is the rendered generator prompt (for the echo check)."""
    return {**vocabulary_check(text, seed["verb"], seed["noun"], seed["adjective"]),
            f"repeated_{NGRAM}gram_ratio": repeated_ngram_ratio(words_of(text)),
            "ends_cleanly": text_checks.ends_cleanly(text),
            "repeated_sentences": text_checks.repeated_sentences(text),
            "longest_loop": text_checks.longest_loop(text),
            "prompt_echo": text_checks.echoed_ngrams(text, prompt)[:5] if prompt else [],
            "meta_narration": text_checks.meta_narration(text)}


SEED_WORD_CHECKS = {"has_verb": "verb", "has_noun": "noun", "has_adjective": "adjective"}


class StoryDecision(BaseModel):
    """TinyStories' own decision fields (its gates), given under the job's `decision:`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_out_of_vocabulary: float | None = Field(
        None, ge=0, le=1, description="reject (stage 'vocabulary') above this share of words outside the vocabulary")
    # The seed-word gate is on by default: 0 of 20 accepted demo stories used all three.
    require_seed_words: bool = Field(
        True, description="reject (stage 'seed_words') a story missing any of its three seed words")
    min_seed_words: int | None = Field(
        None, ge=0, le=3, description="reject (stage 'seed_words') a story using fewer of its three seed words "
        "than this; None: require_seed_words decides (all three, or none)")


def seed_words_needed(rule) -> int:
    """How many of the 3 seed words a story must use: decision.min_seed_words when set, else
    all 3 under require_seed_words, else none."""
    if rule.min_seed_words is not None:
        return rule.min_seed_words
    return len(SEED_WORD_CHECKS) if rule.require_seed_words else 0


def structural_reject(checks: dict, unfinished: bool = True) -> tuple[str, str] | None:
    """The gates for what a likelihood rewards or cannot see (factory/recipes/text_checks.py);
    unfinished=False keeps a story that stops mid-sentence (the job keeps truncated ones)."""
    if unfinished and checks.get("ends_cleanly") is False:
        return "unfinished", "the story stops mid-sentence (no terminal punctuation at the end)"
    if checks.get("prompt_echo"):
        return "prompt_echo", f"the story repeats the prompt: \"{checks['prompt_echo'][0]}\""
    if checks.get("meta_narration"):
        return "meta_narration", f"the story talks about itself: \"{checks['meta_narration'][0]}\""
    if checks.get("repeated_sentences"):
        return "repeated_sentence", f"{checks['repeated_sentences']} sentence(s) or line(s) said twice"
    if checks.get("longest_loop", 1) >= text_checks.LOOP_COPIES:
        return "loop", f"a phrase repeats {checks['longest_loop']} times back-to-back"
    return None


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
    DecisionFields = StoryDecision

    def make_seed(self, index: int) -> dict:
        return make_seed(self.spec.seed, index)

    def rule_checks(self, seed: dict, text: str) -> dict:
        return rule_checks(seed, text, self.generator_prompt(seed))

    def rule_reject(self, checks: dict) -> tuple[str, str] | None:
        """The first gate the story fails, in order: vocabulary, unfinished, prompt echo,
        meta narration, repeated sentence, loop, seed words, repeated 5-grams. A check absent from a row
        made before it existed passes."""
        rule = self.spec.decision
        share = checks["out_of_vocabulary_share"]
        if rule.max_out_of_vocabulary is not None and share > rule.max_out_of_vocabulary:
            return "vocabulary", f"{share:.1%} of words outside the vocabulary > {rule.max_out_of_vocabulary:.1%}"
        structural = structural_reject(checks, unfinished=rule.truncated == "reject") \
            if rule.text_gates == "reject" else None
        if structural:
            return structural
        missing = [word for key, word in SEED_WORD_CHECKS.items() if key in checks and not checks[key]]
        used = len(SEED_WORD_CHECKS) - len(missing)
        needed = seed_words_needed(rule)
        if used < needed:
            return "seed_words", (f"missing seed word(s): {', '.join(missing)}" if needed == len(SEED_WORD_CHECKS)
                                  else f"uses {used} of its 3 seed words (needs {needed}); missing: {', '.join(missing)}")
        return repetition_reject(checks.get(f"repeated_{NGRAM}gram_ratio"))

    @classmethod
    def rule_signals(cls, checks: dict | None) -> list[float]:
        if not checks:
            return []
        seed_words = [bool(checks[k]) for k in SEED_WORD_CHECKS if k in checks]
        repetition = checks.get(f"repeated_{NGRAM}gram_ratio")  # absent in rows made before it existed
        return [1.0 - float(checks["out_of_vocabulary_share"]), sum(seed_words) / len(seed_words),
                *([] if repetition is None else [1.0 - float(repetition)])]

    def rule_signal_rows(self, checks: dict | None) -> dict[str, tuple[float, dict]]:
        """The share of its 3 seed words a story uses, per story (factory stats: its mean and
        range; the verdicts the seed_words gate decided)."""
        if not checks or not all(k in checks for k in SEED_WORD_CHECKS):
            return {}
        used = [word for key, word in SEED_WORD_CHECKS.items() if checks[key]]
        return {"seed_words": (round(len(used) / len(SEED_WORD_CHECKS), 4),
                               {"used": used, "needed": seed_words_needed(self.spec.decision)})}

    def review_variables(self, seed: dict, sample: dict) -> dict:
        return {**seed, "story": sample["text"]}

    @classmethod
    def probe_corruptions(cls) -> dict:
        from factory.recipes.corruptions import seed_words_removed

        return {**super().probe_corruptions(), "seed_words_removed": seed_words_removed}
