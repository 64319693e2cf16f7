"""One process's part of a DDP step (training.workers > 1, ray_train.py): its share of each
micro-batch, the weight of its backward pass, when gradients sync, and the values every rank
must agree on. With world 1 (one process) each method is the identity, so loop.py's
run_loop reads the same for one process and for N."""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch


@dataclass
class Ranks:
    rank: int = 0
    world: int = 1
    module: torch.nn.Module | None = None  # what the forward pass calls: the DDP wrapper when world > 1

    def share(self, batch: dict) -> tuple[dict, bool]:
        """This rank's contiguous share of a batch's rows, cut to its own longest row, and
        whether it holds real rows. A rank left without rows (a last batch smaller than
        world) takes row 0 with weight 0, so that every rank runs the same forward/backward
        and DDP's all-reduce lines up."""
        if self.world == 1:
            return batch, True
        n = len(batch["input_ids"])
        per = math.ceil(n / self.world)
        lo, hi = min(self.rank * per, n), min(self.rank * per + per, n)
        real = hi > lo
        rows = slice(lo, hi) if real else slice(0, 1)
        part = {k: v[rows] for k, v in batch.items()}
        # Right padding: columns past every row's last token change no output (causal attention).
        width = int(part["attention_mask"].any(0).nonzero().max()) + 1
        return {k: v[:, :width] for k, v in part.items()}, real

    def sync(self, last: bool):
        """Gradients all-reduce on the step's last micro-batch only (DDP's no_sync before it)."""
        return contextlib.nullcontext() if self.world == 1 or last else self.module.no_sync()

    def backward(self, loss: torch.Tensor, real: bool) -> None:
        """The loss of a share is its sum over the step's labelled tokens; DDP averages the
        gradients over world ranks, so each backward is scaled by world (0 for a rank without
        rows) and the average is the one-process gradient."""
        weight = (self.world if real else 0) if self.world > 1 else 1
        (loss * weight if weight != 1 else loss).backward()

    def total(self, step_loss: float, device) -> float:
        """The step's loss: the sum of every rank's share."""
        if self.world == 1:
            return step_loss
        summed = torch.tensor([step_loss], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(summed)
        return float(summed.item())

    def agree(self, stop: bool, device) -> bool:
        """Rank 0 hears the driver's stop request; every rank stops at the same step."""
        if self.world == 1:
            return stop
        flag = torch.tensor([int(stop)], device=device)
        torch.distributed.broadcast(flag, 0)
        return bool(flag.item())
