"""An engine actor killed mid-call (kill -9 of its process): Ray restarts it (max_restarts)
and sends its in-flight calls again (max_task_retries); the executor returns every request's
completion once and calls on_completion once per request (the completions cache writes on
it), so nothing is lost and nothing is written twice."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import ray

from factory import backends
from factory.backends import Completion, Request
from factory.backends.base import ModelIdentity


class SlowEcho:
    """Each call notes its process id in `folder`, then takes 0.3 s a request."""

    def __init__(self, folder: str):
        self.folder = folder

    def generate(self, requests):
        with open(os.path.join(self.folder, f"{os.getpid()}.pid"), "w") as f:
            f.write(str(os.getpid()))
        out = []
        for r in requests:
            time.sleep(0.3)
            out.append(Completion(key=r.key, text=f"{r.key} by {os.getpid()}", prompt_tokens=1, completion_tokens=1,
                                  seconds=0.3))
        return out


@pytest.mark.slow  # a 2-actor Ray start, a kill -9 and a restart: 55 s at load 22
def test_a_killed_engine_actor_loses_and_duplicates_nothing(monkeypatch, tmp_path):
    from factory.executors.ray_pool import RayExecutor
    from factory.spec import ModelRef

    folder = str(tmp_path)
    monkeypatch.setattr(backends, "_REGISTRY", dict(backends._REGISTRY))
    backends.register("slow-echo", lambda ref: ModelIdentity(backend="slow-echo", model=ref.model, file_sha256="0"),
                      lambda ref, threads=1: SlowEcho(folder))
    requests = [Request(key=f"r{i}", messages=({"role": "user", "content": f"r{i}"},), sampling={}, seed=i)
                for i in range(12)]
    seen: list[str] = []
    out: dict = {}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        ex = RayExecutor(engines=2, threads=1)
        run = threading.Thread(target=lambda: out.setdefault(
            "completions", ex.generate(ModelRef(backend="slow-echo", model="m"), requests,
                                       on_completion=lambda c: seen.append(c.key))))
        run.start()
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob("*.pid")) and time.monotonic() < deadline:
            time.sleep(0.05)
        victim = int(sorted(tmp_path.glob("*.pid"))[0].stem)
        os.kill(victim, signal.SIGKILL)  # mid-call: each call takes 0.3 s
        run.join(120)
        assert not run.is_alive()
        ex.close()
    finally:
        ray.shutdown()
    completions = out["completions"]
    assert [c.key for c in completions] == [r.key for r in requests]  # nothing lost, in order
    assert sorted(seen) == sorted(r.key for r in requests)  # each written once
    pids = {int(p.stem) for p in tmp_path.glob("*.pid")}
    assert victim in pids and len(pids) >= 3  # the killed process, the other engine, the restarted one
