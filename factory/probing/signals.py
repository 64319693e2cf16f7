"""Per-text signals beside the reviews and the rules: the extension point of `factory probe`.

Each entry of PROVIDERS is `(name, provider)` with provider(ctx, texts) -> a score per text
("higher = better"; None where a text has no score), or None when the signal does not apply
to this job. ctx is the probe's steps.Context: its executor is open while providers run.

`likelihood` (issue 11, item 2): the mean natural-log probability per token of the text
under the job's reference model (factory/steps/likelihood.py), through the same likelihood
cache as the pipeline's step. It applies when that module exists in this version and the
reference backend can score; otherwise the probe runs without it.
"""
from __future__ import annotations

import time


def likelihood(ctx, texts: list[str]) -> list[float] | None:
    try:
        from factory.steps.likelihood import reference_model, score_key, scores_in
    except ImportError:  # a version without the likelihood signal
        return None
    from factory.backends import model_identity

    ref = reference_model(ctx.spec)
    if ref is None or not scores_in(ctx.spec):  # an openai model: only where the job asks for it
        return None
    identity = model_identity(ref).as_dict()
    keys = [score_key(identity, t) for t in texts]
    scores = ctx.store.cached_likelihoods(keys)
    missing = {k: t for k, t in zip(keys, texts) if k not in scores}
    if missing:
        started = time.perf_counter()
        results = ctx.caller.executor.score(ref, list(missing.values()))
        each = round((time.perf_counter() - started) / len(missing), 4)
        rows = [{"score_key": k, "model": identity, "mean_logprob": float(lp), "n_tokens": int(n), "seconds": each}
                for k, (lp, n) in zip(missing, results)]
        ctx.store.put_likelihoods(rows)
        scores.update({r["score_key"]: (r["mean_logprob"], r["n_tokens"], each) for r in rows})
    return [scores[k][0] for k in keys]


def likelihood_tokens(ctx, texts: list[str]) -> list[int | None]:
    """The token count each text's likelihood was measured over (decision.score:
    likelihood_zlib needs it), from the cache the `likelihood` provider filled; None where
    the text has no likelihood."""
    from factory.backends import model_identity
    from factory.steps.likelihood import reference_model, score_key

    ref = reference_model(ctx.spec)
    if ref is None:
        return [None] * len(texts)
    identity = model_identity(ref).as_dict()
    keys = [score_key(identity, t) for t in texts]
    scores = ctx.store.cached_likelihoods(keys)
    return [scores[k][1] if k in scores else None for k in keys]


PROVIDERS: list[tuple[str, object]] = [("likelihood", likelihood)]


def extra_signals(ctx, texts: list[str]) -> dict[str, list[float | None]]:
    out = {}
    for name, provider in PROVIDERS:
        scores = provider(ctx, texts)
        if scores is not None:
            if len(scores) != len(texts):
                raise ValueError(f"probe signal {name}: {len(scores)} scores for {len(texts)} texts")
            out[name] = list(scores)
    return out
