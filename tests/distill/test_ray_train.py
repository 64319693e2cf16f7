"""training.workers: 2 under Ray Train (DDP, gloo on CPU) against the one-process loop: the
same loss curve within float noise, the same checkpoints, resume after a kill, and bad input
(more workers than the cluster's CPUs) as one line with nothing written."""
import json

import pytest
import ray
import torch

from support import query
from factory.cli import main
from factory.distill.spec import TrainingSpec
from factory.distill.student import load_student, load_trained
from factory.distill.train import train
from factory.spec import JobError

from support import SMALL
from .test_distill_cli import write_spec
from .test_kd import KD, _teacher, teacher_dir  # noqa: F401 - teacher_dir is a fixture
from .test_train import FAST, ROWS

# Ray Train workers on a local Ray (~100 s for the module under -n 2): out of the fast lane.
pytestmark = pytest.mark.slow

# 8 rows of 20-70 answer tokens, batch 4 (2 rows per worker): 2 steps an epoch, 8 steps,
# checkpoints at 2, 4 and 6 (the newest two kept). The shares of a batch differ in labelled
# tokens (69 vs 92, 107 vs 54 in epoch 0), so a mean of per-worker means is not the batch mean.
ROWS = [(p, t + " Check: " + " ".join(["yes"] * (6 * i))) for i, (p, t) in enumerate(ROWS)]
CONFIG = TrainingSpec(epochs=4, max_steps=8, checkpoint_every=2, **FAST)


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray of 2 logical CPUs, whatever this machine has, so that 2 workers fit and 3 do not."""
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    if started:
        ray.shutdown()


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def runs(ray_cluster, student_cache, tmp_path_factory):
    """One process, uninterrupted; 2 workers killed after step 3 (the driver's on_step raises,
    as a Ctrl-C would: every worker stops at its next step), then resumed to the end."""
    tmp = tmp_path_factory.mktemp("ray-train")
    one = train(load_student(SMALL, student_cache), ROWS, CONFIG, tmp / "one")

    def kill_after_3(step, total, loss):
        if step >= 3:
            raise Killed

    two = CONFIG.model_copy(update={"workers": 2})
    with pytest.raises(Killed):
        train(load_student(SMALL, student_cache), ROWS, two, tmp / "two", on_step=kill_after_3)
    killed_checkpoints = sorted(p.name for p in (tmp / "two" / "checkpoints").iterdir())
    assert not (tmp / "two" / "final").exists()
    seen = []
    resumed_student = load_student(SMALL, student_cache)
    resumed = train(resumed_student, ROWS, two, tmp / "two", on_step=lambda *a: seen.append(a))
    return one, resumed, resumed_student, killed_checkpoints, seen, tmp


def test_two_workers_follow_the_one_process_loss_curve(runs):
    one, two, student, _, _, tmp = runs
    assert two.steps == one.steps == 8 and len(two.losses) == 8
    # Step 1 is the same model on the same 4 rows: only the fp32 summation order differs (two
    # share sums all-reduced vs one batch sum). Each share's loss is its sum over the step's
    # labelled tokens; a mean of the two shares' means would miss by 5.4e-3 here.
    assert two.losses[0] == pytest.approx(one.losses[0], abs=1e-5)
    # Later steps: AdamW carries the ~1e-7 relative gradient difference along; measured max
    # |diff| ~1e-6 over the 8 steps (losses ~10.5 -> 9.3); 1e-4 leaves room for other kernels
    # and is far below a mis-weighted share (~1e-2) or a wrong shard.
    assert max(abs(a - b) for a, b in zip(one.losses, two.losses)) < 1e-4
    assert two.train_tokens == one.train_tokens and two.loss_tokens == one.loss_tokens
    a = load_trained(tmp / "one" / "final").model.state_dict()
    b = load_trained(tmp / "two" / "final").model.state_dict()
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)
    # the driver's student holds the trained weights, as after a one-process train()
    live = student.model.state_dict()
    assert all(torch.equal(live[k], b[k]) for k in b)


def test_a_killed_ray_train_run_resumes_from_the_same_checkpoints(runs):
    one, two, _, killed_checkpoints, seen, tmp = runs
    assert "step-000002" in killed_checkpoints  # rank 0 wrote them, in the one-process format
    assert two.resumed_from_step in (2, 4, 6)
    assert [s[0] for s in seen] == list(range(two.resumed_from_step + 1, 9))  # rank 0's steps reach on_step
    assert sorted(p.name for p in (tmp / "two" / "checkpoints").iterdir()) == \
        sorted(p.name for p in (tmp / "one" / "checkpoints").iterdir()) == ["step-000004", "step-000006"]
    assert not (tmp / "two" / "ray-train").exists()
    recorded = json.loads((tmp / "two" / "final" / "train_result.json").read_text())
    assert recorded["steps"] == 8 and recorded["losses"] == two.losses


def test_more_workers_than_cpus_is_one_line_and_writes_nothing(ray_cluster, student_cache, tmp_path):
    with pytest.raises(JobError, match=r"^training.workers: 3 workers need 3 CPUs, but the Ray cluster has 2 CPUs "
                                       r"and 0 GPUs; use at most 2$"):
        train(load_student(SMALL, student_cache), ROWS, CONFIG.model_copy(update={"workers": 3}), tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_cli_more_workers_than_cpus_exits_2_and_writes_nothing(ray_cluster, tmp_path, math_db, student_cache,
                                                               monkeypatch, capsys):
    monkeypatch.setenv("FACTORY_CACHE", str(student_cache))
    before = query(math_db, "SELECT (SELECT count(*) FROM mixtures), (SELECT count(*) FROM runs)")
    spec = write_spec(tmp_path, math_db, name="too-many", training={"batch_size": 4, "workers": 3})
    assert main(["distill", spec, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: training.workers: 3 workers need 3 CPUs, but the Ray cluster has 2 CPUs and 0 GPUs; "
                   "use at most 2"]
    assert query(math_db, "SELECT (SELECT count(*) FROM mixtures), (SELECT count(*) FROM runs)") == before
    assert not (tmp_path / "runs").exists()


def test_kd_with_two_workers_follows_one_process_and_keeps_the_last_ce_and_kl(ray_cluster, teacher_dir, student_cache,
                                                                            tmp_path):
    # Logit KD through Ray Train: the teacher's top-k targets travel in the batches each
    # worker shards; the loss curve is the one process's, and the run records last_ce and
    # last_kl (rank 0's share of the last step) as a one-process run does.
    config = TrainingSpec(epochs=1, max_steps=2, **KD, **FAST)
    one = train(load_student(SMALL, student_cache), ROWS, config, tmp_path / "one",
                teacher=_teacher(teacher_dir, student_cache, tmp_path / "cache"))
    two = train(load_student(SMALL, student_cache), ROWS, config.model_copy(update={"workers": 2}), tmp_path / "two",
                teacher=_teacher(teacher_dir, student_cache, tmp_path / "cache"))
    assert len(two.losses) == len(one.losses) == 2
    assert max(abs(a - b) for a, b in zip(one.losses, two.losses)) < 1e-4
    for run in (one, two):
        assert run.kd["last_ce"] > 0 and run.kd["last_kl"] >= 0
