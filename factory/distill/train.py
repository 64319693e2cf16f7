"""Supervised fine-tuning of a student on (prompt, target) rows: a plain torch loop that
reads top to bottom, with the loss on the target only, optional packing, and checkpoints
that a killed run resumes from to the same final weights as an uninterrupted one.

Schedule: AdamW, linear warmup over warmup_steps, then a constant learning rate. Constant
(not decaying) on purpose: the learning rate of step n then depends on n alone, not on the
total, so raising max_steps later resumes a finished-early run exactly where it stopped.

Data order: step n is batch n % batches_per_epoch of epoch n // batches_per_epoch, and an
epoch's order is a pure function of (seed, epoch): a resumed run sees the same batches.

grad_accumulation k: a step is k consecutive batches (the rows of one k x batch_size batch);
precision bf16: autocast forward passes; workers N > 1: the same loop (run_loop) in N Ray
Train DDP workers, each on 1/N of every batch (ray_train.py), same checkpoints and resume."""
from __future__ import annotations

import contextlib
import copy
import json
import math
import random
import re
import shutil
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import torch

from factory.distill.gkd import gkd_loss, is_on_policy, on_policy_batch, teacher_logits
from factory.distill.kd import kd_loss, teacher_targets
from factory.distill.spec import TrainingSpec
from factory.distill.student import Student, write_dir_atomically
from factory.keys import digest

IGNORE = -100  # the label that transformers' cross-entropy skips
KEEP_CHECKPOINTS = 2
CHECKPOINT_DIR = re.compile(r"^step-(\d{6})$")
RESULT_FILE = "train_result.json"
STATE_FILE = "state.pt"


class TrainError(ValueError):
    """One line: what is wrong with the rows or the run directory, and what to do."""


@dataclass
class TrainResult:
    steps: int
    epochs_done: float
    rows: int  # rows trained on (rows_without_target excluded)
    train_tokens: int  # non-pad tokens through the model, whole run (resumed steps included)
    loss_tokens: int  # tokens the loss was on: labelled tokens after the one-token shift
    seconds: float  # this process's training loop (checkpoints included; encoding and final save not)
    tokens_per_second: float  # this process's train tokens / seconds
    first_loss: float
    final_loss: float  # mean of the last 10 steps' losses
    losses: list[float]  # one per step, whole run
    checkpoint: str  # the final model dir (merged weights + tokenizer)
    resumed_from_step: int  # 0 when fresh
    rows_without_target: int = 0  # dropped: the prompt filled max_length, no target token fit
    kd: dict | None = None  # method kd: teacher hash, top-k cache hits/misses, teacher passes, last CE/KL;
    # method gkd: teacher hash, on-policy micro-batches of this process, the last divergence


def encode_row(tokenizer, prompt: str, target: str, max_length: int) -> dict:
    """input_ids and labels of one row: labels are IGNORE on the prompt and the ids of the
    target + one EOS. Prompt and target are tokenized apart (no special tokens), so the
    boundary is exactly where the text says; an empty prompt puts the loss on every token."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    input_ids = (prompt_ids + target_ids)[:max_length]
    labels = ([IGNORE] * len(prompt_ids) + target_ids)[:max_length]
    return {"input_ids": input_ids, "labels": labels}


def make_batches(encoded: list[dict], batch_size: int, seed: int, epoch: int, packing: bool,
                 max_length: int, pad_id: int) -> list[dict]:
    """One epoch's batches (input_ids, attention_mask, labels tensors), in an order fixed by
    (seed, epoch). Unpacked: batch_size rows, right-padded to the longest. Packed: the rows
    in that order are concatenated and cut into blocks of exactly max_length tokens (the
    last block padded); a row may straddle two blocks and attends to the rows before it in
    its block. Every label survives packing; only the first token of a block is unpredicted.

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
    return batches


def _pad(t: torch.Tensor, width: int) -> torch.Tensor:
    return torch.cat([t, t.new_zeros((width - len(t), *t.shape[1:]))])


def batches_per_epoch(encoded: list[dict], batch_size: int, packing: bool, max_length: int) -> int:
    sequences = math.ceil(sum(len(r["input_ids"]) for r in encoded) / max_length) if packing else len(encoded)
    return math.ceil(sequences / batch_size)


def train(student: Student, rows: list[tuple[str, str]], config: TrainingSpec, run_dir: Path,
          on_step: Callable[[int, int, float], None] | None = None, teacher=None) -> TrainResult:
    """Train student.model in place on rows and write run_dir/final (weights, LoRA merged, and
    tokenizer). Resumes from the newest complete checkpoint in run_dir/checkpoints; when
    run_dir/final is already complete, returns its recorded result without training.
    config.method kd needs teacher (a kd.Teacher): its top-k targets are read from its cache
    (or computed once) before the first step. config.method gkd needs one too: it scores
    every step's tokens (gkd.py)."""
    run_dir = Path(run_dir)
    final_dir = run_dir / "final"
    model, tokenizer = student.model, student.tokenizer
    kd = config.kd if config.method == "kd" else None
    if config.method in ("kd", "gkd") and teacher is None:
        raise TrainError(f"training.method: {config.method} needs a teacher (training.{config.method}.teacher)")
    # What decides the weights at step n (max_steps and epochs only decide where to stop).
    # identity() leaves out method/kd at their sft default: SFT keys are what they were.
    settings = config.identity({"max_steps", "epochs", "checkpoint_every", "threads"})
    resume_key = digest(rows, student.description, settings,
                        *([teacher.identity] if config.method in ("kd", "gkd") else []))
    final_key = digest(resume_key, config.max_steps, config.epochs)
    if (final_dir / RESULT_FILE).is_file():
        return _finished(final_dir, final_key)
    if final_dir.exists():
        raise TrainError(f"{final_dir}: exists but has no {RESULT_FILE}, so train() did not write it; "
                         "move it away or use a new run directory")

    encoded = [encode_row(tokenizer, p, t, config.max_length) for p, t in rows]
    # The first label is never predicted (logits at i predict token i + 1).
    usable = [r for r in encoded if any(label != IGNORE for label in r["labels"][1:])]
    if not usable:
        raise TrainError(f"rows: none of {len(rows)} rows has a target token within max_length "
                         f"{config.max_length}; give rows with a target or raise training.max_length")

    kd_stats = None
    if kd is not None:
        hits, misses, passes = teacher.cache.hits, teacher.cache.misses, teacher.forward_passes
        for row, targets in zip(usable, teacher_targets(teacher, [r["input_ids"] for r in usable], kd)):
            row.update(targets)
        kd_stats = {"teacher": teacher.identity, "teacher_kind": teacher.spec.kind, "top_k": kd.top_k,
                    "cache_hits": teacher.cache.hits - hits, "cache_misses": teacher.cache.misses - misses,
                    "teacher_forward_passes": teacher.forward_passes - passes}
    elif config.method == "gkd":
        kd_stats = {"method": "gkd", "teacher": teacher.identity, "teacher_kind": teacher.spec.kind,
                    "on_policy_batches": 0, "last_divergence": None}

    # grad_accumulation k: an optimizer step takes k micro-batches of batch_size, the same rows
    # as one batch of k x batch_size (make_batches cuts the same order into smaller pieces).
    micro_per_epoch = batches_per_epoch(usable, config.batch_size, config.packing, config.max_length)
    per_epoch = math.ceil(micro_per_epoch / config.grad_accumulation)
    total = per_epoch * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    checkpoints = run_dir / "checkpoints"
    loop = Loop(usable=usable, config=config, per_epoch=per_epoch, micro_per_epoch=micro_per_epoch, total=total,
                checkpoints=checkpoints, resume_key=resume_key, latest=_latest_checkpoint(checkpoints),
                pad_id=tokenizer.pad_token_id, eos_id=tokenizer.eos_token_id)
    if config.workers > 1:
        from factory.distill.ray_train import train_on_ray

        progress, resumed_from, seconds, tokens_here = train_on_ray(student, loop, run_dir, on_step, kd_stats)
    else:
        device = next(model.parameters()).device
        # The caller's on_step reports; only the Ray driver's stop request ends a loop early.
        report = None if on_step is None else (lambda *a: on_step(*a) and False)
        scorer = teacher.model() if config.method == "gkd" else None
        progress, resumed_from, seconds, tokens_here = run_loop(model, loop, device, on_step=report, kd_stats=kd_stats,
                                                                teacher_model=scorer)
    model.eval()

    losses = progress["losses"]
    result = TrainResult(
        steps=progress["step"], epochs_done=round(progress["step"] / per_epoch, 4), rows=len(usable),
        train_tokens=progress["train_tokens"], loss_tokens=progress["loss_tokens"],
        seconds=round(seconds, 3), tokens_per_second=round(tokens_here / seconds, 1) if seconds > 0 else 0.0,
        first_loss=losses[0] if losses else float("nan"),
        final_loss=sum(losses[-10:]) / len(losses[-10:]) if losses else float("nan"),
        losses=losses, checkpoint=str(final_dir.resolve()), resumed_from_step=resumed_from,
        rows_without_target=len(encoded) - len(usable), kd=kd_stats)

    def write_final(tmp: Path) -> None:
        # Merging into a copy leaves student.model a peft model (the caller's object).
        merged = copy.deepcopy(model).merge_and_unload() if hasattr(model, "merge_and_unload") else model
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / RESULT_FILE).write_text(json.dumps({**asdict(result), "settings_key": final_key}))

    write_dir_atomically(final_dir, write_final)
    return result


@dataclass
class Loop:
    """What every process of one run needs to take the same steps: picklable, since it
    travels to the Ray Train workers (workers > 1)."""
    usable: list[dict]
    config: TrainingSpec
    per_epoch: int  # optimizer steps an epoch
    micro_per_epoch: int  # batches of batch_size an epoch
    total: int
    checkpoints: Path
    resume_key: str
    latest: Path | None  # the checkpoint to resume from (found by the driver)
    pad_id: int
    eos_id: int | None = None  # method gkd: where a student's sample ends


def _shard(batch: dict, rank: int, world: int) -> tuple[dict, bool]:
    """This rank's contiguous share of a batch's rows, cut to its own longest row. A rank
    left without rows (a last batch smaller than world) takes row 0 with weight 0, so that
    every rank runs the same forward/backward and DDP's all-reduce lines up."""
    if world == 1:
        return batch, True
    n = len(batch["input_ids"])
    per = math.ceil(n / world)
    lo, hi = min(rank * per, n), min(rank * per + per, n)
    real = hi > lo
    rows = slice(lo, hi) if real else slice(0, 1)
    part = {k: v[rows] for k, v in batch.items()}
    # Right padding: columns past every row's last token change no output (causal attention).
    width = int(part["attention_mask"].any(0).nonzero().max()) + 1
    return {k: v[:, :width] for k, v in part.items()}, real


def _predicted(batch: dict) -> int:
    return int((batch["labels"][:, 1:] != IGNORE).sum())


def run_loop(model, loop: Loop, device, rank: int = 0, world: int = 1, wrapped=None, on_step=None,
             kd_stats: dict | None = None, teacher_model=None) -> tuple[dict, int, float, int]:
    """The optimizer steps of one run, in this process: (progress, resumed_from, seconds,
    tokens seen here). world > 1: this is rank `rank` of a DDP group (wrapped is the DDP
    module around model); every rank builds the same batches and takes its share of each;
    the loss on each share is its sum over the global step's labelled tokens, times world
    (DDP averages gradients), so the averaged gradient is the one process's. Only rank 0
    writes checkpoints; on_step(step, total, loss) returning True stops every rank. Method gkd
    (one process only) needs teacher_model; its on-policy micro-batches are the student's
    samples, and the tokens counted are the ones trained on."""
    config, kd = loop.config, (loop.config.kd if loop.config.method == "kd" else None)
    gkd = config.gkd if config.method == "gkd" else None
    wrapped = wrapped or model
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    warmup = config.warmup_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda n: min(1.0, (n + 1) / warmup) if warmup else 1.0)
    progress = {"step": 0, "losses": [], "train_tokens": 0, "loss_tokens": 0}
    if loop.latest is None:
        torch.manual_seed(config.seed)  # dropout (LoRA dropout); the tiny Llama has none
    else:
        progress = _restore(loop.latest, model, optimizer, scheduler, loop.resume_key)
    resumed_from = progress["step"]
    # bf16: autocast the forward passes; weights, gradients and AdamW stay fp32.
    autocast = (lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)) \
        if config.precision == "bf16" else contextlib.nullcontext
    k = config.grad_accumulation

    previous_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    model.train()
    tokens_here = 0
    started = time.perf_counter()
    try:
        batches, batches_epoch = None, None
        for step in range(resumed_from, loop.total):
            epoch, index = divmod(step, loop.per_epoch)
            if epoch != batches_epoch:
                batches = make_batches(loop.usable, config.batch_size, config.seed, epoch, config.packing,
                                       config.max_length, loop.pad_id)
                batches_epoch = epoch
            group = batches[index * k:min(index * k + k, loop.micro_per_epoch)]
            if gkd is not None:  # a micro-batch the student writes replaces the rows' targets
                sampled = [is_on_policy(gkd, config.seed, step, i) for i in range(len(group))]
                group = [on_policy_batch(model, b, gkd, config.seed, step, i, loop.pad_id, loop.eos_id)
                         if on else b for i, (b, on) in enumerate(zip(group, sampled))]
                if kd_stats is not None:
                    kd_stats["on_policy_batches"] += sum(sampled)
            predicted = sum(_predicted(b) for b in group)  # the global step's labelled tokens
            step_loss = 0.0
            for i, full in enumerate(group):
                part, real = _shard(full, rank, world)
                batch = {kk: v.to(device) for kk, v in part.items()}
                weight = (world if real else 0) if world > 1 else 1
                sync = (contextlib.nullcontext() if world == 1 or i == len(group) - 1 else wrapped.no_sync())
                with sync:
                    with autocast():
                        if gkd is not None:
                            logits = wrapped(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                            loss = gkd_loss(logits, teacher_logits(teacher_model, batch), batch["labels"], gkd)
                            if kd_stats is not None:
                                kd_stats["last_divergence"] = float(loss.detach())
                            if len(group) > 1:  # the mean over the step's labelled tokens
                                loss = loss * (_predicted(batch) / max(predicted, 1))
                        elif kd is None:
                            # A sum over the labelled tokens / the step's count: the mean, and 0 (not
                            # NaN) for a packed batch whose only labels sit on unpredicted first positions.
                            loss = wrapped(**batch, num_items_in_batch=max(predicted, 1)).loss
                        else:
                            logits = wrapped(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                            loss, ce, kl = kd_loss(logits, batch["labels"], batch["kd_ids"], batch["kd_logp"],
                                                   batch["kd_mask"], kd.alpha, kd.temperature)
                            # kd_loss is the mean over this share's labelled tokens; every labelled
                            # token past the first has a teacher target (kd_mask), so weighting by the
                            # share of the step's tokens makes both terms the step's mean.
                            if len(group) > 1 or world > 1:
                                loss = loss * (_predicted(batch) / max(predicted, 1))
                            if kd_stats is not None:
                                kd_stats.update(last_ce=ce, last_kl=kl)
                    (loss * weight if weight != 1 else loss).backward()
                step_loss += loss.item() if real else 0.0
            if world > 1:  # the step's loss: the sum of every rank's share
                summed = torch.tensor([step_loss], dtype=torch.float64, device=device)
                torch.distributed.all_reduce(summed)
                step_loss = float(summed.item())
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)

            seen = sum(int(b["attention_mask"].sum()) for b in group)
            tokens_here += seen
            progress["step"] = step + 1
            progress["losses"].append(step_loss)
            progress["train_tokens"] += seen
            progress["loss_tokens"] += predicted
            if rank == 0 and progress["step"] % config.checkpoint_every == 0 and progress["step"] < loop.total:
                _save_checkpoint(loop.checkpoints, model, optimizer, scheduler, progress, loop.resume_key)
            stop = bool(on_step(progress["step"], loop.total, step_loss)) if on_step is not None else False
            if world > 1:  # rank 0 hears the driver; every rank stops at the same step
                flag = torch.tensor([int(stop)], device=device)
                torch.distributed.broadcast(flag, 0)
                stop = bool(flag.item())
            if stop:
                break
        seconds = time.perf_counter() - started
    finally:
        torch.set_num_threads(previous_threads)
    return progress, resumed_from, seconds, tokens_here


def _finished(final_dir: Path, final_key: str) -> TrainResult:
    recorded = json.loads((final_dir / RESULT_FILE).read_text())
    if recorded.get("settings_key") != final_key:
        raise TrainError(f"{final_dir}: holds a model trained on other rows or settings; "
                         "use a new run directory or delete this one")
    return TrainResult(**{f.name: recorded[f.name] for f in fields(TrainResult) if f.name in recorded})


def _latest_checkpoint(checkpoints: Path) -> Path | None:
    """The newest complete checkpoint. Complete by construction: a checkpoint is written into
    a .tmp-* dir and renamed, so leftovers of a killed write are never step-* dirs."""
    if not checkpoints.is_dir():
        return None
    for stale in checkpoints.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    done = sorted(p for p in checkpoints.iterdir() if CHECKPOINT_DIR.match(p.name) and (p / STATE_FILE).is_file())
    return done[-1] if done else None


def _save_checkpoint(checkpoints: Path, model, optimizer, scheduler, progress: dict, key: str) -> None:
    # Only trainable tensors: the frozen ones are rebuilt identically by load_student
    # (LoRA on SmolLM2-135M: ~0.5 MB instead of 540 MB of weights + 1 GB of Adam moments).
    state = {
        "key": key,
        "progress": progress,
        "trainable": {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    target = checkpoints / f"step-{progress['step']:06d}"
    write_dir_atomically(target, lambda tmp: torch.save(state, tmp / STATE_FILE))
    done = sorted(p for p in checkpoints.iterdir() if CHECKPOINT_DIR.match(p.name))
    for old in done[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)


def _restore(checkpoint: Path, model, optimizer, scheduler, key: str) -> dict:
    state = torch.load(checkpoint / STATE_FILE, weights_only=True)
    if state["key"] != key:
        raise TrainError(f"{checkpoint}: a checkpoint of other rows or settings; "
                         "use a new run directory or delete its checkpoints")
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if set(trainable) != set(state["trainable"]):
        raise TrainError(f"{checkpoint}: its tensors do not match the student's trainable parameters")
    with torch.no_grad():
        for name, tensor in state["trainable"].items():
            trainable[name].copy_(tensor)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return state["progress"]
