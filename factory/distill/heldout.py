"""Two measures of a stories student on text nobody trained on (issue 12 item 4):

story_losses: the student's loss on each held-out accepted story, written exactly as a
training row is (train.encode_row: no prompt, the story's tokens + EOS, cut at max_length;
the first token is not predicted), as (nats summed, tokens predicted). Summed over items and
divided by the tokens it is the held-out loss in nats per token, comparable with the
training loss of the run.

TeacherScorer: how likely the teacher finds the student's continuation of a held-out
opening, from the backend's score(texts) (llama.cpp's forward pass with logits at every
position, the likelihood signal of issue 11): log p(continuation | opening) =
score(opening + continuation) summed - score(opening) summed, over the tokens the
continuation adds. SmolLM2's tokenizer splits before a space, so an opening that ends on a
word and a continuation that starts with " word" keep the opening's tokens a prefix of the
whole's; a continuation that glues onto the last word ("dog" + "s ran") shifts that one
token, which the difference then counts to the continuation. Scores are cached in
likelihood_cache by (model identity with its file hash, text), as the signal's are: a rerun
scores nothing again."""
from __future__ import annotations

import time

from factory.backends import model_identity
from factory.spec import ModelRef

# The teacher when the source job's likelihood model cannot score (a remote generator):
# the embedded SmolLM2-135M GGUF through the llamacpp backend.
EMBEDDED_TEACHER = ModelRef(backend="llamacpp", model="smollm2-135m-instruct-q4_1")


def story_losses(student, texts: list[str], max_length: int, batch_size: int = 16) -> list[tuple[float, int]]:
    """(nats summed, tokens predicted) per text, in order, under the student in eval mode
    (its train/eval mode is restored). Right padding; padded positions count nothing."""
    import torch
    import torch.nn.functional as F

    from factory.distill.train import encode_row

    model, tokenizer = student.model, student.tokenizer
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    encoded = [encode_row(tokenizer, "", text, max_length)["input_ids"] for text in texts]
    was_training = model.training
    model.eval()
    out: list[tuple[float, int]] = []
    try:
        with torch.no_grad():
            for start in range(0, len(encoded), batch_size):
                chunk = encoded[start:start + batch_size]
                width = max(len(ids) for ids in chunk)
                ids = torch.tensor([row + [pad] * (width - len(row)) for row in chunk], device=device)
                mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in chunk], device=device)
                logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
                nats = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none") * mask[:, 1:]
                counts = mask[:, 1:].sum(dim=1)
                out.extend((float(n), int(c)) for n, c in zip(nats.sum(dim=1).tolist(), counts.tolist()))
    finally:
        model.train(was_training)
    return out


def teacher_ref(job_spec: dict) -> ModelRef:
    """The model that wrote the source job's stories, as the likelihood signal picks it:
    decision.likelihood_model, else the generator's (first pool) model; the embedded
    SmolLM2 when that backend cannot score (can_score: llamacpp and vllm can; an
    OpenAI-compatible server only says so at run time, so it is not taken here)."""
    from factory.steps.likelihood import can_score

    chosen = (job_spec.get("decision") or {}).get("likelihood_model")
    generator = (job_spec.get("roles") or {}).get("generator") or {}
    if chosen is None and generator:
        chosen = (generator.get("pool") or [generator])[0]
    if chosen is None:
        return EMBEDDED_TEACHER
    ref = ModelRef(**{k: chosen[k] for k in ("backend", "model", "endpoint", "tensor_parallel_size") if k in chosen})
    return ref if can_score(ref.backend, job_spec.get("base_dir")) else EMBEDDED_TEACHER


class TeacherScorer:
    """score(texts) of a teacher model, through an executor (the grader's: one engine per
    model, so a teacher that is also the reviewer loads once), cached in likelihood_cache.
    store: a stores.Store (or a connection: the stores functions take either)."""

    def __init__(self, ref: ModelRef, store, executor):
        self.ref, self.store, self.executor = ref, store, executor
        self.identity = model_identity(ref).as_dict()  # hashes the model file: a missing one fails first
        self.scored = 0  # texts the model scored (cache misses)

    def score(self, texts: list[str]) -> dict[str, tuple[float, int]]:
        """text -> (mean natural-log probability per token, tokens scored)."""
        from factory.steps.likelihood import score_key
        from stores.signals import cached_likelihoods, put_likelihoods

        keys = {t: score_key(self.identity, t) for t in dict.fromkeys(texts)}
        cached = cached_likelihoods(self.store, list(keys.values()))
        missing = [t for t, k in keys.items() if k not in cached]
        if missing:
            started = time.perf_counter()
            results = self.executor.score(self.ref, missing)
            each = round((time.perf_counter() - started) / len(missing), 4)
            self.scored += len(missing)
            fresh = {keys[t]: (float(lp), int(n), each) for t, (lp, n) in zip(missing, results)}
            put_likelihoods(self.store, [{"score_key": k, "model": self.identity, "mean_logprob": lp, "n_tokens": n,
                                        "seconds": s} for k, (lp, n, s) in fresh.items()])
            cached.update(fresh)
        return {t: cached[k][:2] for t, k in keys.items()}

    def continuations(self, pairs: list[tuple[str, str]]) -> list[tuple[float, int] | None]:
        """(opening, continuation) -> (log p(continuation | opening) summed in nats, tokens
        of the continuation), or None for an empty continuation (nothing to score)."""
        wanted = [(o, o + c) for o, c in pairs if c.strip()]
        scores = self.score([t for pair in wanted for t in pair])
        out: list[tuple[float, int] | None] = []
        for opening, continuation in pairs:
            if not continuation.strip():
                out.append(None)
                continue
            (lp_o, n_o), (lp_f, n_f) = scores[opening], scores[opening + continuation]
            tokens = n_f - n_o
            out.append((lp_f * n_f - lp_o * n_o, tokens) if tokens > 0 else None)
        return out
