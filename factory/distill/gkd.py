"""On-policy distillation (GKD: Agarwal et al. 2024, "On-Policy Distillation of Language
Models: Learning from Self-Generated Mistakes"). On a share `on_policy` of the micro-batches
the student samples continuations of the rows' prompts, and the teacher scores those tokens;
on the others the rows' own text is scored. Either way the loss is a divergence between the
teacher's and the student's next-token distributions at every target position, over the
whole vocabulary (no top-k cache: the student's samples are new at every step, so the
teacher runs at every step; that is the price of on-policy training, and why `method: kd`
exists).

The divergence, with P the teacher and Q the student (both softened by the temperature):

    beta = 0:        KL(P || Q)                              (forward KL, as in `method: kd`)
    beta = 1:        KL(Q || P)                              (reverse KL: mode seeking)
    0 < beta < 1:    beta * KL(P || M) + (1 - beta) * KL(Q || M),  M = beta * P + (1 - beta) * Q

The generalized JSD vanishes at both ends of beta, so the ends are the two KLs (the usual
convention for GKD's beta). Gradients flow through Q only, including its share of M.

Every sample is drawn from a generator seeded by (training seed, step, micro-batch), so a
resumed run draws the same samples as an uninterrupted one; whether a micro-batch is
on-policy is decided the same way."""
from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F

from factory.distill.kd import _at_least_fp32
from factory.distill.spec import GKDSpec
from factory.keys import digest

IGNORE = -100  # batches.py's label for "no loss here"


def generalized_jsd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, beta: float,
                    temperature: float) -> torch.Tensor:
    """Per position divergence [N] between teacher and student logits [N, V] (see above)."""
    s = F.log_softmax(student_logits / temperature, dim=-1)
    t = F.log_softmax(teacher_logits / temperature, dim=-1)
    if beta == 0:
        return (t.exp() * (t - s)).sum(-1)
    if beta == 1:
        return (s.exp() * (s - t)).sum(-1)
    m = torch.logsumexp(torch.stack([t + math.log(beta), s + math.log(1 - beta)]), dim=0)
    return beta * (t.exp() * (t - m)).sum(-1) + (1 - beta) * (s.exp() * (s - m)).sum(-1)


def gkd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
             gkd: GKDSpec) -> torch.Tensor:
    """Mean divergence over the positions that predict a labelled token (logits [B, L, V],
    labels [B, L] with IGNORE off the target); 0 when no position is labelled."""
    at = labels[:, 1:] != IGNORE
    if not bool(at.any()):
        return student_logits.sum() * 0.0
    s = _at_least_fp32(student_logits[:, :-1][at])  # only the target positions: a full [B, L, V] copy is ~400 MB
    t = _at_least_fp32(teacher_logits[:, :-1][at])
    return generalized_jsd(s, t, gkd.beta, gkd.temperature).mean()


def is_on_policy(gkd: GKDSpec, seed: int, step: int, micro: int) -> bool:
    return random.Random(f"gkd:{seed}:{step}:{micro}").random() < gkd.on_policy


def prompt_lengths(batch: dict, gkd: GKDSpec) -> list[int]:
    """Per row, the tokens the student continues: the row's prompt (the tokens before its first
    label), or its first prompt_tokens tokens when the loss is on every token (stories)."""
    out = []
    for ids_mask, labels in zip(batch["attention_mask"], batch["labels"]):
        length = int(ids_mask.sum())
        labelled = (labels[:length] != IGNORE).nonzero()
        first = int(labelled[0]) if len(labelled) else length
        out.append(max(1, min(first if first > 0 else gkd.prompt_tokens, length)))
    return out


def on_policy_batch(model, batch: dict, gkd: GKDSpec, seed: int, step: int, micro: int, pad_id: int,
                    eos_id: int) -> dict:
    """The batch with each row's target replaced by the student's sample (right-padded, labels
    on the sampled tokens up to and including the first EOS). Samples are drawn in eval mode
    from a generator of their own: the caller's RNG state and train mode are untouched."""
    device = next(model.parameters()).device  # the loop moves batches to the device after this
    prompts = [row[:n].tolist() for row, n in zip(batch["input_ids"], prompt_lengths(batch, gkd))]
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(int(digest("gkd-sample", seed, step, micro), 16) % (2 ** 63))
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=gkd.max_new_tokens,
                                 do_sample=True, temperature=gkd.temperature, top_k=0, top_p=1.0, num_beams=1,
                                 repetition_penalty=1.0, pad_token_id=pad_id, eos_token_id=eos_id)
    finally:
        model.train(was_training)
    rows = []
    for prompt, sampled in zip(prompts, out[:, width:].tolist()):
        kept = sampled[:sampled.index(eos_id) + 1] if eos_id in sampled else sampled
        rows.append((prompt + kept, [IGNORE] * len(prompt) + kept))
    longest = max(len(r[0]) for r in rows)
    return {
        "input_ids": torch.tensor([i + [pad_id] * (longest - len(i)) for i, _ in rows], device=device),
        "attention_mask": torch.tensor([[1] * len(i) + [0] * (longest - len(i)) for i, _ in rows], device=device),
        "labels": torch.tensor([lab + [IGNORE] * (longest - len(lab)) for _, lab in rows], device=device),
    }


def teacher_logits(teacher_model, batch: dict) -> torch.Tensor:
    with torch.no_grad():
        return teacher_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
