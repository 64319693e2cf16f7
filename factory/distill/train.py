"""Training a student on (prompt, target) rows, the entry point (train()): encode the rows
(batches.py), take the teacher's KD targets, run the optimizer steps in this process or in N
Ray Train workers (loop.py, ray_train.py), and write run_dir/final with the run's record.
A killed run resumes from its checkpoints to the same final weights as an uninterrupted one;
a finished one returns its record without training.

Data order: step n is batch n % batches_per_epoch of epoch n // batches_per_epoch, and an
epoch's order is a pure function of (seed, epoch): a resumed run sees the same batches."""
from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

from factory.distill.batches import IGNORE, batches_per_epoch, encode_row, make_batches
from factory.distill.kd import teacher_targets
from factory.distill.loop import Loop, LoopResult, TrainError, _latest_checkpoint, run_loop
from factory.distill.spec import TrainingSpec
from factory.distill.student import Student, write_dir_atomically
from factory.keys import digest

# Re-exported: callers import these from train.py.
__all__ = ["IGNORE", "Loop", "LoopResult", "TrainError", "TrainResult", "batches_per_epoch", "encode_row",
           "make_batches", "run_loop", "train"]

RESULT_FILE = "train_result.json"


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

        outcome = train_on_ray(student, loop, run_dir, on_step)
    else:
        device = next(model.parameters()).device
        # The caller's on_step reports; only the Ray driver's stop request ends a loop early.
        report = None if on_step is None else (lambda *a: on_step(*a) and False)
        scorer = teacher.model() if config.method == "gkd" else None
        outcome = run_loop(model, loop, device, on_step=report, teacher_model=scorer)
    model.eval()
    if kd_stats is not None:
        kd_stats.update(outcome.stats)
    progress, seconds = outcome.progress, outcome.seconds
    losses = progress["losses"]
    result = TrainResult(
        steps=progress["step"], epochs_done=round(progress["step"] / per_epoch, 4), rows=len(usable),
        train_tokens=progress["train_tokens"], loss_tokens=progress["loss_tokens"],
        seconds=round(seconds, 3), tokens_per_second=round(outcome.tokens_here / seconds, 1) if seconds > 0 else 0.0,
        first_loss=losses[0] if losses else float("nan"),
        final_loss=sum(losses[-10:]) / len(losses[-10:]) if losses else float("nan"),
        losses=losses, checkpoint=str(final_dir.resolve()), resumed_from_step=outcome.resumed_from,
        rows_without_target=len(encoded) - len(usable), kd=kd_stats)

    def write_final(tmp: Path) -> None:
        # Merging into a copy leaves student.model a peft model (the caller's object).
        merged = copy.deepcopy(model).merge_and_unload() if hasattr(model, "merge_and_unload") else model
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / RESULT_FILE).write_text(json.dumps({**asdict(result), "settings_key": final_key}))

    write_dir_atomically(final_dir, write_final)
    return result


def _finished(final_dir: Path, final_key: str) -> TrainResult:
    recorded = json.loads((final_dir / RESULT_FILE).read_text())
    if recorded.get("settings_key") != final_key:
        raise TrainError(f"{final_dir}: holds a model trained on other rows or settings; "
                         "use a new run directory or delete this one")
    return TrainResult(**{f.name: recorded[f.name] for f in fields(TrainResult) if f.name in recorded})
