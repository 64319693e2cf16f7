"""The optimizer steps of one training run (train.py prepares the rows and writes the result):
a loss function per method (sft, kd, gkd) returning its statistics, DDP's per-rank part in
ddp.Ranks, and the checkpoints a killed run resumes from to the same weights.

Schedule: AdamW, linear warmup over warmup_steps, then a constant learning rate. Constant
(not decaying) on purpose: the learning rate of step n then depends on n alone, not on the
total, so raising max_steps later resumes a finished-early run exactly where it stopped.

grad_accumulation k: a step is k consecutive batches (the rows of one k x batch_size batch);
precision bf16: autocast forward passes; workers N > 1: run_loop in N Ray Train DDP workers,
each on 1/N of every batch (ray_train.py), same checkpoints and resume."""
from __future__ import annotations

import contextlib
import functools
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import torch

from factory.distill.batches import IGNORE, make_batches
from factory.distill.ddp import Ranks
from factory.distill.gkd import gkd_loss, is_on_policy, on_policy_batch, teacher_logits
from factory.distill.kd import kd_loss
from factory.distill.spec import GKDSpec, KDSpec, TrainingSpec
from factory.distill.student import write_dir_atomically

KEEP_CHECKPOINTS = 2
CHECKPOINT_DIR = re.compile(r"^step-(\d{6})$")
STATE_FILE = "state.pt"


class TrainError(ValueError):
    """One line: what is wrong with the rows or the run directory, and what to do."""
    exit_code = 1  # a runtime problem (factory/cli.py's codes)


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


class LoopResult(NamedTuple):
    progress: dict  # step, losses, train_tokens, loss_tokens: the whole run's, resumed steps included
    resumed_from: int
    seconds: float
    tokens_here: int  # tokens through the model in this process
    stats: dict  # the method's statistics (kd: last_ce, last_kl; gkd: on_policy_batches, last_divergence)


def _predicted(batch: dict) -> int:
    return int((batch["labels"][:, 1:] != IGNORE).sum())


# One loss per method. Each takes (model, this rank's share of a micro-batch, the labelled
# tokens of the whole step, whether the step is cut in shares) and returns the share's loss
# (its part of the step's mean) with the statistics of that micro-batch.

def sft_loss(model, batch: dict, predicted: int, shared: bool) -> tuple[torch.Tensor, dict]:
    # A sum over the labelled tokens / the step's count: the mean, and 0 (not NaN) for a
    # packed batch whose only labels sit on unpredicted first positions.
    return model(**batch, num_items_in_batch=max(predicted, 1)).loss, {}


def kd_step_loss(model, batch: dict, predicted: int, shared: bool, kd: KDSpec) -> tuple[torch.Tensor, dict]:
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss, ce, kl = kd_loss(logits, batch["labels"], batch["kd_ids"], batch["kd_logp"], batch["kd_mask"],
                           kd.alpha, kd.temperature)
    # kd_loss is the mean over this share's labelled tokens; every labelled token past the
    # first has a teacher target (kd_mask), so weighting by the share of the step's tokens
    # makes both terms the step's mean.
    if shared:
        loss = loss * (_predicted(batch) / max(predicted, 1))
    return loss, {"last_ce": ce, "last_kl": kl}


def gkd_step_loss(model, batch: dict, predicted: int, shared: bool, gkd: GKDSpec,
                  teacher_model) -> tuple[torch.Tensor, dict]:
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = gkd_loss(logits, teacher_logits(teacher_model, batch), batch["labels"], gkd)
    stats = {"last_divergence": float(loss.detach())}
    if shared:  # the mean over the step's labelled tokens
        loss = loss * (_predicted(batch) / max(predicted, 1))
    return loss, stats


def method_loss(config: TrainingSpec, teacher_model=None) -> Callable[..., tuple[torch.Tensor, dict]]:
    if config.method == "kd":
        return functools.partial(kd_step_loss, kd=config.kd)
    if config.method == "gkd":
        return functools.partial(gkd_step_loss, gkd=config.gkd, teacher_model=teacher_model)
    return sft_loss


def on_policy_group(model, group: list[dict], loop: Loop, step: int) -> tuple[list[dict], int]:
    """Method gkd: a seeded share of the step's micro-batches becomes the student's samples
    (their targets replaced); the group and how many were sampled."""
    config = loop.config
    sampled = [is_on_policy(config.gkd, config.seed, step, i) for i in range(len(group))]
    group = [on_policy_batch(model, b, config.gkd, config.seed, step, i, loop.pad_id, loop.eos_id) if on else b
             for i, (b, on) in enumerate(zip(group, sampled))]
    return group, sum(sampled)


def run_loop(model, loop: Loop, device, rank: int = 0, world: int = 1, wrapped=None, on_step=None,
             teacher_model=None) -> LoopResult:
    """The optimizer steps of one run, in this process. world > 1: this is rank `rank` of a
    DDP group (wrapped is the DDP module around model); every rank builds the same batches
    and takes its share of each (ddp.Ranks). Only rank 0 writes checkpoints; on_step(step,
    total, loss) returning True stops every rank. Method gkd (one process only) needs
    teacher_model; the tokens counted are the ones trained on."""
    config, ranks = loop.config, Ranks(rank, world, wrapped or model)
    step_loss_of = method_loss(config, teacher_model)
    optimizer, scheduler = _optimizer(model, config)
    progress = _start(loop, model, optimizer, scheduler)
    resumed_from = progress["step"]
    # bf16: autocast the forward passes; weights, gradients and AdamW stay fp32.
    autocast = (lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)) \
        if config.precision == "bf16" else contextlib.nullcontext
    epoch_batches = functools.lru_cache(maxsize=1)(
        lambda epoch: make_batches(loop.usable, config.batch_size, config.seed, epoch, config.packing,
                                   config.max_length, loop.pad_id, config.group_by_length))
    stats = {"on_policy_batches": 0} if config.method == "gkd" else {}
    tokens_here = 0
    with _torch_threads(config.threads):
        model.train()
        started = time.perf_counter()
        for step in range(resumed_from, loop.total):
            group = _micro_batches(loop, epoch_batches, step)
            if config.method == "gkd":  # a micro-batch the student writes replaces the rows' targets
                group, sampled = on_policy_group(model, group, loop, step)
                stats["on_policy_batches"] += sampled
            predicted = sum(_predicted(b) for b in group)  # the global step's labelled tokens
            step_loss = 0.0
            for i, full in enumerate(group):
                part, real = ranks.share(full)
                batch = {k: v.to(device) for k, v in part.items()}
                with ranks.sync(last=i == len(group) - 1):
                    with autocast():
                        loss, last = step_loss_of(ranks.module, batch, predicted, len(group) > 1 or world > 1)
                    ranks.backward(loss, real)
                step_loss += loss.item() if real else 0.0
                stats.update(last)
            step_loss = ranks.total(step_loss, device)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)

            seen = sum(int(b["attention_mask"].sum()) for b in group)
            tokens_here += seen
            _advance(progress, step_loss, seen, predicted)
            if rank == 0 and progress["step"] % config.checkpoint_every == 0 and progress["step"] < loop.total:
                _save_checkpoint(loop.checkpoints, model, optimizer, scheduler, progress, loop.resume_key)
            stop = bool(on_step(progress["step"], loop.total, step_loss)) if on_step is not None else False
            if ranks.agree(stop, device):
                break
        seconds = time.perf_counter() - started
    return LoopResult(progress, resumed_from, seconds, tokens_here, stats)


def _micro_batches(loop: Loop, epoch_batches, step: int) -> list[dict]:
    """Step n's k = grad_accumulation micro-batches: batches n*k .. n*k+k-1 of its epoch."""
    epoch, index = divmod(step, loop.per_epoch)
    k = loop.config.grad_accumulation
    return epoch_batches(epoch)[index * k:min(index * k + k, loop.micro_per_epoch)]


def _optimizer(model, config: TrainingSpec):
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    warmup = config.warmup_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda n: min(1.0, (n + 1) / warmup) if warmup else 1.0)
    return optimizer, scheduler


def _start(loop: Loop, model, optimizer, scheduler) -> dict:
    """A fresh run's progress (seeding dropout), or the checkpoint's (restoring its state)."""
    if loop.latest is None:
        torch.manual_seed(loop.config.seed)  # dropout (LoRA dropout); the tiny Llama has none
        return {"step": 0, "losses": [], "train_tokens": 0, "loss_tokens": 0}
    return _restore(loop.latest, model, optimizer, scheduler, loop.resume_key)


def _advance(progress: dict, step_loss: float, seen: int, predicted: int) -> None:
    progress["step"] += 1
    progress["losses"].append(step_loss)
    progress["train_tokens"] += seen
    progress["loss_tokens"] += predicted


@contextlib.contextmanager
def _torch_threads(threads: int | None):
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


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
