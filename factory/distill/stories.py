"""Stories evaluation, as in TinyStories (Eldan & Li 2023, section 3.1): the student is given
the first words of a held-out story, continues it greedily, and a reviewer grades the
continuation on the dataset's own rubric (grammar, creativity, consistency, plot 1-10 and
an age group). The paper's grader was GPT-4; here it is the source job's reviewer model,
sampling and all, so a distillation is graded by the judge that curated its data.

Reviews go through the completions cache like every other role call: a rerun of the same
evaluation (same student outputs, same judge, same seed) asks the model nothing."""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

from factory.backends import model_identity
from factory.calls import BoundRole, Caller
from factory.distill.eval_sets import EvalItem, held_out
from factory.distill.evaluate import EvalReport, generate
from factory.distill.format import story_prompt
from factory.distill.spec import EvaluationSpec
from factory.executors.local import LocalExecutor
from factory.keys import request_seed
from factory.spec import JobError, RoleSpec
from roles import Drop, ReviewResult, StoryReviewer

TEMPLATE = "tinystories/continuation_reviewer@1"
ROLE = "continuation_reviewer"
# A story must go on past its opening for there to be something to continue: at least 6
# words beyond the prompt (a 12-word opening needs a story of 18+ words).
MIN_WORDS_AFTER_OPENING = 5
Z_95 = 1.96


def story_items(stories: list[dict], n: int, seed: int, prompt_words: int) -> list[EvalItem]:
    """n stories (dicts with sample_id, text, content_hash) set aside by seed: the
    seed-ranked order of eval_sets.held_out, skipping stories of <= prompt_words + 5 words.
    The question is the opening (the first prompt_words words), the answer the whole story."""
    items = []
    for story in held_out(stories, len(stories), seed):
        words = story["text"].split()
        if len(words) <= prompt_words + MIN_WORDS_AFTER_OPENING:
            continue
        items.append(EvalItem(story["sample_id"], " ".join(words[:prompt_words]), story["text"]))
        if len(items) == n:
            return items
    raise JobError(f"evaluation.problems: {len(items)} of the source job's {len(stories)} stories have more than "
                   f"{prompt_words + MIN_WORDS_AFTER_OPENING} words, {n} asked; lower evaluation.problems "
                   f"or evaluation.grading.prompt_words")


class ContinuationReviewer(StoryReviewer):
    """The dataset's story rubric and schema, asked about a continuation. Its own name: the
    name enters the request key and the lineage, so these reviews never share a cache
    entry with the dataset's reviews."""

    name = ROLE


class ContinuationGrader:
    """The source job's reviewer model and sampling, bound to the continuation template.
    With a reviewer pool, the first model of the pool grades every item: one judge for
    every mixture, and one model to load."""

    def __init__(self, reviewer_spec: RoleSpec, store, seed: int = 0):
        ref = reviewer_spec.pool[0] if reviewer_spec.pool else reviewer_spec.model_ref()
        spec = reviewer_spec.model_copy(update={"template": TEMPLATE, "pool": None, "exclude_generator_model": False})
        # Identity first (it hashes the model file): a missing model fails before any call.
        self.bound = BoundRole(ContinuationReviewer(TEMPLATE), spec, [(ref, model_identity(ref).as_dict())])
        self.seed = seed
        self.executor = LocalExecutor(threads=2)
        self.caller = Caller(store, self.executor)

    def grade(self, items: list[tuple[str, str, str]]) -> list[ReviewResult | Drop]:
        """(item_id, opening, continuation) -> one review each, in order. The request seed
        is the item's position, so the same list graded again is all cache hits."""
        variables = [{"opening": opening, "continuation": continuation} for _, opening, continuation in items]
        requests = [self.bound.request(v, request_seed(self.seed, i, ROLE)) for i, v in enumerate(variables)]
        completions = self.caller.run(self.bound, requests)
        return [self.bound.role.parse(v, c.text) for v, c in zip(variables, completions)]

    def close(self) -> None:
        self.executor.close()


def evaluate_stories(student, items: list[EvalItem], spec: EvaluationSpec, grader,
                     generate_fn: Callable[..., list[tuple[str, int]]] | None = None, *,
                     losses_fn: Callable[[list[str]], list[tuple[float, int]]] | None = None,
                     teacher=None) -> EvalReport:
    """The student continues each item's opening (greedy, spec.max_new_tokens) and `grader`
    reviews each continuation. generate_fn has evaluate.generate's signature (tests pass a
    fake); grader has ContinuationGrader's grade.

    losses_fn(stories) -> (nats, tokens) per held-out story (heldout.story_losses bound to
    the student): the held-out loss. teacher: heldout.TeacherScorer (its continuations and
    identity): the teacher's log-likelihood of each continuation. Either left out, its
    metrics are absent (shown as "-")."""
    generate_fn = generate_fn or generate
    prompts = [story_prompt(item.question) for item in items]
    outputs = generate_fn(student, prompts, spec.max_new_tokens, sample=False, seed=spec.seed)
    if len(outputs) != len(prompts):
        raise ValueError(f"generate_fn returned {len(outputs)} outputs for {len(prompts)} prompts")
    reviews = grader.grade([(item.item_id, item.question, text) for item, (text, _) in zip(items, outputs)])
    if len(reviews) != len(items):
        raise ValueError(f"grader returned {len(reviews)} reviews for {len(items)} continuations")
    rows = [_row(item, text, tokens, review) for item, (text, tokens), review in zip(items, outputs, reviews)]
    metrics = _metrics(rows, reviews, spec)
    if losses_fn is not None:
        losses = losses_fn([item.answer for item in items])
        if len(losses) != len(items):
            raise ValueError(f"losses_fn returned {len(losses)} losses for {len(items)} stories")
        for row, (nats, count) in zip(rows, losses):
            row["heldout"] = {"nats": nats, "tokens": count}
        metrics.update(_ratio_metrics("heldout_loss", losses))
        metrics["heldout_split"] = HELDOUT_SPLIT
    if teacher is not None:
        scored = teacher.continuations([(item.question, text) for item, (text, _) in zip(items, outputs)])
        for row, got in zip(rows, scored):
            row["teacher"] = None if got is None else {"logprob": got[0], "tokens": got[1]}
        metrics.update(_ratio_metrics("teacher_logprob", [g for g in scored if g is not None]))
        metrics.update(teacher_scored=sum(g is not None for g in scored), teacher_model=teacher.identity)
    return EvalReport(metrics=metrics, rows=rows)


# What `heldout_split` records with each run (the item ids themselves are its run_evals rows).
HELDOUT_SPLIT = ("accepted stories of the source job ranked by digest('held-out', evaluation.seed, content_hash); "
                 "the first evaluation.problems with more than prompt_words + 5 words; no mixture trains on "
                 "them (by sample id and content hash)")


def _ratio_metrics(name: str, pairs: list[tuple[float, int]]) -> dict:
    """name: sum / tokens over the items (nats per token), its seeded bootstrap 95% interval
    over items as name_ci, and the tokens it covers. A loss is nats summed (positive); the
    teacher's is log-probability summed (negative)."""
    from factory.distill.bootstrap import SEED, ratio_interval

    value, low, high = ratio_interval([p[0] for p in pairs], [p[1] for p in pairs])
    r = lambda v: None if v is None else round(v, 4)  # noqa: E731
    return {name: r(value), f"{name}_ci": [r(low), r(high)], f"{name}_tokens": sum(p[1] for p in pairs),
            f"{name}_interval": f"bootstrap over items, percentile, seed {SEED}"}


def _row(item: EvalItem, output: str, output_tokens: int, review: ReviewResult | Drop) -> dict:
    graded = isinstance(review, ReviewResult)
    return {
        "item_id": item.item_id,
        "prompt": item.question,
        "reference": item.answer,
        "output": output,
        "answer": None,   # math fields: stories have no final answer to match
        "correct": None,
        "score": review.overall if graded else None,
        "output_tokens": output_tokens,
        "details": review.as_dict() if graded else {"drop": review.reason, "raw": review.raw},
    }


def mean_interval(values: list[float]) -> tuple[float | None, float | None]:
    """95% normal interval of the mean, mean +- 1.96 * sd / sqrt(n) with the sample sd
    (n - 1): 50 reviews with sd 1.5 give +-0.42 points. Fewer than 2 values: (None, None)."""
    n = len(values)
    if n < 2:
        return None, None
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = Z_95 * sd / math.sqrt(n)
    return mean - half, mean + half


def _metrics(rows: list[dict], reviews: list, spec: EvaluationSpec) -> dict:
    n = len(rows)
    graded = [r for r in reviews if isinstance(r, ReviewResult)]
    scores = [r.overall for r in graded]
    low, high = mean_interval(scores)
    axes = StoryReviewer.axes
    return {
        "n": n,
        "graded": len(graded),
        "dropped": n - len(graded),
        "mean_score": round(sum(scores) / len(scores), 4) if scores else None,
        "ci_low": None if low is None else round(low, 4),
        "ci_high": None if high is None else round(high, 4),
        "axes": {a: round(sum(r.scores[a] for r in graded) / len(graded), 4) for a in axes} if graded else {},
        "mean_output_tokens": round(sum(r["output_tokens"] for r in rows) / n, 2) if n else 0.0,
        "age_groups": dict(sorted(Counter(r.label for r in graded).items())),
        "prompt_words": spec.grading.prompt_words,
        "decoding": "greedy",
    }
