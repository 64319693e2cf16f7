"""training.workers > 1: loop.py's run_loop in N Ray Train workers (TorchTrainer, DDP:
gloo on CPU, nccl on GPU) on the Ray cluster this process has joined, else the one at
`factory distill --address`, else RAY_ADDRESS or the cluster `ray start` made here, else a
local Ray (ray.init's own rules).

The driver (train()) encodes the rows, computes KD targets, finds the checkpoint to resume
from and writes run_dir/final; rank 0 writes the checkpoints a single process writes (same
format, same resume key: a run resumes from them with any number of workers) and, at the
end, its trained tensors for the driver to load. Nothing here touches the DuckDB store:
run.py records the run from the driver. run_dir must be on storage that every node sees
(one machine, or a shared filesystem)."""
from __future__ import annotations

import shutil
import threading
from pathlib import Path

import ray
import torch

from factory.distill.student import Student, write_dir_atomically
from factory.spec import JobError

WORKDIR = "ray-train"  # run_dir/ray-train: Ray Train's storage and rank 0's final tensors; removed when done
LAST = "last"
POLL_S = 0.25  # how often the driver forwards rank 0's steps to on_step


def ensure_ray(address: str | None = None) -> None:
    """Join the cluster at `address` (factory distill --address), else ray.init's own rules."""
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 configure_logging=True)


def check_workers(workers: int, device: str, address: str | None = None) -> None:
    """Bad input (exit 2, nothing written): more workers than the cluster has CPUs (and GPUs
    when the student trains on cuda: one each per worker)."""
    if workers <= 1:
        return
    ensure_ray(address)
    resources = ray.cluster_resources()
    cpus, gpus = int(resources.get("CPU", 0)), int(resources.get("GPU", 0))
    if workers > cpus or (device == "cuda" and workers > gpus):
        need = f"{workers} CPUs" + (f" and {workers} GPUs" if device == "cuda" else "")
        most = min(cpus, gpus) if device == "cuda" else cpus
        raise JobError(f"training.workers: {workers} workers need {need}, but the Ray cluster has {cpus} CPUs and "
                       f"{gpus} GPUs; use at most {most}")


class _Channel:
    """Rank 0 -> driver: (step, total, loss) per step; driver -> rank 0: stop."""

    def __init__(self):
        self.steps, self.stop = [], False

    def report(self, step: int, total: int, loss: float) -> bool:
        self.steps.append((step, total, loss))
        return self.stop

    def take(self) -> list:
        steps, self.steps = self.steps, []
        return steps

    def halt(self) -> None:
        self.stop = True


def _worker(config: dict) -> None:
    import ray.train
    from ray.train.torch import get_device, prepare_model

    from factory.distill.loop import run_loop

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    model, loop, channel = config["model"], config["loop"], config["channel"]
    device = get_device()
    wrapped = prepare_model(model)  # to this worker's device, inside DDP
    on_step = (lambda *step: ray.get(channel.report.remote(*step))) if rank == 0 else None
    outcome = run_loop(model, loop, device, rank, world, wrapped, on_step)
    if rank == 0 and outcome.progress["step"] == loop.total:
        # KD's stats are the CE and KL of rank 0's share of the last step (a share, not the whole batch)
        state = {"key": loop.resume_key, **outcome._asdict(),
                 "trainable": {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}}
        write_dir_atomically(Path(config["last"]), lambda tmp: torch.save(state, tmp / "state.pt"))


def train_on_ray(student: Student, loop, run_dir: Path, on_step=None):
    """run_loop's LoopResult from loop.config.workers workers (its stats: rank 0's, e.g. KD's
    last_ce and last_kl of rank 0's share of the last step); student.model ends up with the
    trained weights, as after run_loop in-process."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from factory.distill.loop import LoopResult, TrainError

    model = student.model
    device = next(model.parameters()).device
    workers = loop.config.workers
    check_workers(workers, device.type)
    work = (Path(run_dir) / WORKDIR).resolve()
    shutil.rmtree(work, ignore_errors=True)  # a killed run's leftovers: Ray metadata only, never progress
    work.mkdir(parents=True)
    channel = ray.remote(num_cpus=0)(_Channel).remote()
    model.to("cpu")  # travels pickled; each worker moves its copy to its own device
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"model": model, "loop": loop, "channel": channel, "last": str(work / LAST)},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=device.type == "cuda"),
        torch_config=TorchConfig(backend="nccl" if device.type == "cuda" else "gloo"),
        run_config=RunConfig(name="train", storage_path=str(work)))
    outcome: dict = {}

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as e:  # noqa: BLE001 - re-raised on the driver's thread below
            outcome["error"] = e

    thread = threading.Thread(target=fit, name="ray-train-fit", daemon=True)
    thread.start()
    try:
        while True:
            thread.join(POLL_S)
            running = thread.is_alive()
            for step in ray.get(channel.take.remote()):  # after the liveness check: none is missed
                if on_step is not None:
                    on_step(*step)
            if not running:
                break
    except BaseException:  # on_step raised (a kill in tests, Ctrl-C): every worker stops at its next step
        channel.halt.remote()
        thread.join()
        raise
    finally:
        model.to(device)
        ray.kill(channel)
    if "error" in outcome:
        lines = str(outcome["error"]).strip().splitlines() or [type(outcome["error"]).__name__]
        raise TrainError(f"training.workers: the Ray Train run failed: {lines[-1]}") from outcome["error"]
    state = torch.load(work / LAST / "state.pt", weights_only=True)
    if state["key"] != loop.resume_key:
        raise TrainError(f"{work / LAST}: tensors of another run")
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    with torch.no_grad():
        for name, tensor in state["trainable"].items():
            trainable[name].copy_(tensor)
    shutil.rmtree(work, ignore_errors=True)
    return LoopResult(**{name: state[name] for name in LoopResult._fields})
