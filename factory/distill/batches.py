"""Rows to token batches: a row's input_ids and labels (the loss on the target only), and an
epoch's batches in an order that is a pure function of (seed, epoch), so a resumed run sees
the same batches; optionally packed into blocks of max_length tokens."""
from __future__ import annotations

import math
import random

import torch

IGNORE = -100  # the label that transformers' cross-entropy skips


def encode_row(tokenizer, prompt: str, target: str, max_length: int) -> dict:
    """input_ids and labels of one row: labels are IGNORE on the prompt and the ids of the
    target + one EOS. Prompt and target are tokenized apart (no special tokens), so the
    boundary is exactly where the text says; an empty prompt puts the loss on every token."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    input_ids = (prompt_ids + target_ids)[:max_length]
    labels = ([IGNORE] * len(prompt_ids) + target_ids)[:max_length]
    return {"input_ids": input_ids, "labels": labels}


# Rows sorted by length within windows of this many batches (HF Trainer's group_by_length uses
# 50 too): wide enough that nearly every batch is one length class, narrow enough that an
# epoch's early and late rows do not meet.
LENGTH_WINDOW_BATCHES = 50


def make_batches(encoded: list[dict], batch_size: int, seed: int, epoch: int, packing: bool,
                 max_length: int, pad_id: int, group_by_length: bool | str = False) -> list[dict]:
    """One epoch's batches (input_ids, attention_mask, labels tensors), in an order fixed by
    (seed, epoch). Unpacked: batch_size rows, right-padded to the longest. Packed: the rows
    in that order are concatenated and cut into blocks of exactly max_length tokens (the
    last block padded); a row may straddle two blocks and attends to the rows before it in
    its block. Every label survives packing; only the first token of a block is unpredicted.
    group_by_length (unpacked only): the shuffled rows are sorted by length within windows
    of LENGTH_WINDOW_BATCHES batches, cut into batches, and the batches shuffled again. On
    6,400 mix-long rows (20% long, 80% short reference solutions, the 512-token tokenizer)
    batches of 32 hold 1.03x the rows' tokens grouped and 2.98x plain (padding).
    group_by_length "buckets": the shuffled rows are split by power-of-two length class and
    each class cut into batches in that order; the classes' remainders (fewer than
    batch_size each) are cut together last, so an epoch has as many batches as plain. On the
    same rows: BUCKETS_PADDING below. Sorting made batches of near-identical problems (the
    reference teacher's solutions' length follows their template), and a short-only student
    learned about half as much in 1,500 steps (docs/experiments.md row b.5); buckets keep
    every kind of problem in every class.

    Rows may carry per-token tensors besides input_ids and labels (KD's kd_ids, kd_logp
    [n, k] and kd_mask [n]): they are ordered, packed and zero-padded the same way."""
    order = list(range(len(encoded)))
    random.Random(f"{seed}:{epoch}").shuffle(order)
    extra = [k for k in (encoded[0] if encoded else {}) if k not in ("input_ids", "labels")]
    if packing:
        ids = [t for i in order for t in encoded[i]["input_ids"]]
        labels = [t for i in order for t in encoded[i]["labels"]]
        joined = {k: torch.cat([encoded[i][k] for i in order]) for k in extra}
        sequences = [{"input_ids": ids[s:s + max_length], "labels": labels[s:s + max_length],
                      **{k: v[s:s + max_length] for k, v in joined.items()}}
                     for s in range(0, len(ids), max_length)]
        width = lambda chunk: max_length  # noqa: E731
    else:
        if group_by_length == "buckets":
            order = _bucketed(order, encoded, batch_size)
        elif group_by_length:
            window = batch_size * LENGTH_WINDOW_BATCHES
            order = [i for s in range(0, len(order), window)
                     for i in sorted(order[s:s + window], key=lambda i: -len(encoded[i]["input_ids"]))]
        sequences = [encoded[i] for i in order]
        width = lambda chunk: max(len(r["input_ids"]) for r in chunk)  # noqa: E731
    batches = []
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start:start + batch_size]
        w = width(chunk)
        batches.append({
            "input_ids": torch.tensor([r["input_ids"] + [pad_id] * (w - len(r["input_ids"])) for r in chunk]),
            "attention_mask": torch.tensor([[1] * len(r["input_ids"]) + [0] * (w - len(r["input_ids"])) for r in chunk]),
            "labels": torch.tensor([r["labels"] + [IGNORE] * (w - len(r["labels"])) for r in chunk]),
            **{k: torch.stack([_pad(r[k], w) for r in chunk]) for k in extra},
        })
    if group_by_length and not packing:  # else batches would come in length order (sorted: every window longest first)
        random.Random(f"{seed}:{epoch}:batches").shuffle(batches)
    return batches


def _bucketed(order: list[int], encoded: list[dict], batch_size: int) -> list[int]:
    """order regrouped so that consecutive batch_size slices fall within one length class
    (n tokens -> class (n - 1).bit_length(): 17-32 and 33-64 are two classes), the
    remainders of every class last."""
    classes: dict[int, list[int]] = {}
    for i in order:
        classes.setdefault((len(encoded[i]["input_ids"]) - 1).bit_length(), []).append(i)
    whole, rest = [], []
    for _, rows in sorted(classes.items()):
        cut = len(rows) - len(rows) % batch_size
        whole += rows[:cut]
        rest += rows[cut:]
    return whole + rest


def _pad(t: torch.Tensor, width: int) -> torch.Tensor:
    return torch.cat([t, t.new_zeros((width - len(t), *t.shape[1:]))])


def batches_per_epoch(encoded: list[dict], batch_size: int, packing: bool, max_length: int) -> int:
    sequences = math.ceil(sum(len(r["input_ids"]) for r in encoded) / max_length) if packing else len(encoded)
    return math.ceil(sequences / batch_size)
