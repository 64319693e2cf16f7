"""A tiny deterministic run of each method (sft, sft with packing and grad_accumulation 2, kd
with grad_accumulation 2, gkd), pinned: its losses and a sha256 of its final weights. The
values were recorded before run_loop was split into a loss function per method (issue 26) and
the split reproduced them bit for bit; a later change to the loop that moves one bit fails here.

Float results depend on torch's kernels and the CPU's vector unit, so the hash and the exact
losses are checked where both are the ones recorded with (RECORDED_ON); elsewhere the losses
within 1e-5 relative."""
import hashlib

import pytest
import torch

from factory.distill.format import math_prompt, math_target
from factory.distill.spec import GKDSpec, TeacherSpec, TrainingSpec
from factory.distill.student import load_student
from factory.distill.train import train

from support import SMALL
from .test_kd import KD, _teacher, teacher_dir  # noqa: F401 - teacher_dir is a fixture

RECORDED_ON = ("2.13.0+cpu", "AVX512")  # torch.__version__, torch.backends.cpu.get_cpu_capability()
# Answers of 8-44 tokens: rows differ in length, so padding, packing and the per-token mean matter.
ROWS = [(math_prompt(f"Tom has {i} apples and buys {i + 3} more. How many apples does he have?"),
         math_target(f"{i} + {i + 3} = {2 * i + 3}. The answer is {2 * i + 3}." + " yes" * (5 * i))) for i in range(8)]
FAST = dict(batch_size=4, learning_rate=3e-3, threads=1)
GKD = dict(method="gkd", gkd=GKDSpec(teacher=TeacherSpec(kind="hf", path="unused")))

PINNED = {
    "sft": (TrainingSpec(epochs=2, max_steps=4, **FAST),
            "43dc72b5c721650f49d93d29ddf107ccd3a570a4a315af82181a83b7fdc9c8e7",
            [10.532379150390625, 10.401505470275879, 10.218685150146484, 10.057831764221191]),
    "sft_packed_accumulated": (
        TrainingSpec(epochs=2, max_steps=3, grad_accumulation=2, packing=True, max_length=96, **FAST),
        "0c052d48452aab8f5afe67f762e2794e17df41c84181e3c3b256379d3227968a",
        [10.536866426467896, 10.390085577964783]),
    "kd_accumulated": (TrainingSpec(epochs=2, max_steps=3, grad_accumulation=2, **KD, **FAST),
                       "86ea044cfac976fa35952444276aa8acccf57fa2d3ee72aa3a9533277559bccf",
                       [5.267215967178345, 5.189184188842773]),
    "gkd": (TrainingSpec(epochs=2, max_steps=4, **GKD, **{**FAST, "batch_size": 2}),
            "88dbcf7affc447656fde834f0cd1301b1b07f029312c7639f98b3adb4f19c0fc",
            [0.0031726504676043987, 0.0030890742782503366, 0.0029281298629939556, 0.001883537508547306]),
}


def weights_hash(model) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("name", list(PINNED))
def test_a_tiny_run_of_each_method_gives_the_pinned_losses_and_weights(name, teacher_dir, student_cache, tmp_path):
    config, pinned_hash, pinned_losses = PINNED[name]
    student = load_student(SMALL, student_cache)
    teacher = _teacher(teacher_dir, student_cache, tmp_path / "kd-cache") if config.method != "sft" else None
    result = train(student, ROWS, config, tmp_path / name, teacher=teacher)
    if (torch.__version__, torch.backends.cpu.get_cpu_capability()) == RECORDED_ON:
        assert result.losses == pinned_losses
        assert weights_hash(student.model) == pinned_hash
    else:
        assert result.losses == pytest.approx(pinned_losses, rel=1e-5)
