"""ScoreLikelihood: the likelihood signal of every sample still in play, the mean natural-log
probability of its tokens under a reference model (decision.likelihood_model; by default the
generator's model: SmolLM2 on the embedded default), from one forward pass where the model
lives (executor.score -> the engine's backend.score). A `likelihood` row in `signals` for
each; with decision.min_likelihood set, a sample below it is rejected (stage `likelihood`)
before any review is paid for.

Scores are cached by (model identity with its file hash, text): a rerun, or another job
with the same text, computes nothing. An openai reference model's identity is its model
name and base_url, so two models behind one endpoint never share a score. A reference
backend that cannot score is refused at load when the job asks for the signal
(factory/job_checks.py), and skipped when it does not. An openai one can score only where its
server returns prompt logprobs, known from its first answer: it scores only when the job
asks (min_likelihood or likelihood_model), and a server without them stops the run at the
first batch with one line naming the endpoint (ScoreUnsupported, a RuntimeError: `factory
run` prints it, exit 1; the batch's completions stay cached).
"""
from __future__ import annotations

import time

from factory.backends import model_identity
from factory.backends.base import SCORING_BACKENDS, SERVER_SCORING_BACKENDS
from factory.calls import library_versions
from factory.keys import digest
from factory.steps.context import Context, add_verdict, signal_row
from factory.steps.state import BatchState

ROLE = "likelihood"  # the signals rows' role: not a recipe role, it makes no completion


def reference_model(spec):
    """The likelihood's reference model: decision.likelihood_model, else the generator's
    (first pool) model; None for a recipe without a generator."""
    if spec.decision.likelihood_model is not None:
        return spec.decision.likelihood_model
    generator = spec.roles.get("generator")
    return generator.models()[0] if generator is not None else None


def can_score(backend: str, base_dir: str | None = None) -> bool:
    """Whether the backend's engines implement score(texts), without loading a model."""
    from factory.backends import class_offers

    return backend in SCORING_BACKENDS or class_offers(backend, "score", base_dir)


def asks_for_likelihood(spec) -> bool:
    return spec.decision.min_likelihood is not None or spec.decision.likelihood_model is not None


def scores_in(spec) -> bool:
    """Whether this job's likelihood step (and probe) scores: a reference backend that always
    can, or one whose server may (openai) when the job asks for the signal."""
    ref = reference_model(spec)
    if ref is None:
        return False
    if ref.backend in SERVER_SCORING_BACKENDS:
        return asks_for_likelihood(spec)
    return can_score(ref.backend, spec.base_dir)


def score_key(identity: dict, text: str) -> str:
    return digest("likelihood", identity, text, length=32)


class ScoreLikelihood:
    reads, writes = ("samples",), ("samples",)

    def run(self, ctx: Context, state: BatchState) -> None:
        if not state.samples or not scores_in(ctx.spec):
            return
        ref = reference_model(ctx.spec)
        identity = model_identity(ref).as_dict()
        keys = {i: score_key(identity, row["text"]) for i, row in state.samples.items()}
        scores = ctx.store.cached_likelihoods(list(keys.values()))
        missing = {keys[i]: row["text"] for i, row in state.samples.items() if keys[i] not in scores}
        if missing:
            started = time.perf_counter()
            results = ctx.caller.executor.score(ref, list(missing.values()))
            each = (time.perf_counter() - started) / len(missing)  # one call for all: its time, shared
            fresh = {key: (float(lp), int(n), round(each, 4)) for key, (lp, n) in zip(missing, results)}
            ctx.store.put_likelihoods([{"score_key": k, "model": identity, "mean_logprob": lp, "n_tokens": n,
                                        "seconds": s} for k, (lp, n, s) in fresh.items()])
            scores.update(fresh)
        minimum, rows = ctx.spec.decision.min_likelihood, []
        for i in sorted(state.samples):
            sample, key = state.samples[i]["sample_id"], keys[i]
            mean_logprob, n_tokens, seconds = scores[key]
            rows.append(signal_row(ctx, sample, "likelihood", mean_logprob,
                                   {"n_tokens": n_tokens, "unit": "mean natural-log probability per token"},
                                   model=identity, request_key=key, prompt_tokens=n_tokens, completion_tokens=0,
                                   seconds=seconds, versions=library_versions(), role=ROLE))
            if minimum is not None and mean_logprob < minimum:
                add_verdict(ctx, state.batch, sample, "reject", "likelihood",
                            f"mean log-likelihood {mean_logprob:.3f} < {minimum:g} under {identity['model']} "
                            f"({n_tokens} tokens)")
                del state.samples[i]
        for row in rows:  # committed with the batch's other rows
            state.batch.add("signals", row)
