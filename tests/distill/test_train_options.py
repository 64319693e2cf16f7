"""training.grad_accumulation and training.precision (one process), and which training
fields enter run ids: at their defaults, none of the new ones does; workers never does."""
import pytest
import torch

from factory.distill.spec import DistillSpec, TrainingSpec
from factory.distill.student import load_student
from factory.distill.train import train
from factory.spec import JobError

from support import SMALL
from .test_ray_train import ROWS as VARIED
from .test_train import FAST, ROWS


def test_accumulating_2_batches_of_2_follows_batch_4(student_cache, tmp_path):
    # 8 rows of 20-70 answer tokens: batch 4 is 2 steps an epoch; 2 x 2 accumulated is the
    # same rows per step.
    whole = train(load_student(SMALL, student_cache), VARIED, TrainingSpec(epochs=3, max_steps=6, **FAST), tmp_path / "b4")
    small = TrainingSpec(epochs=3, max_steps=6, **{**FAST, "batch_size": 2}, grad_accumulation=2)
    accumulated = train(load_student(SMALL, student_cache), VARIED, small, tmp_path / "b2x2")
    plain = train(load_student(SMALL, student_cache), VARIED,
                  TrainingSpec(epochs=3, max_steps=6, **{**FAST, "batch_size": 2}), tmp_path / "b2")
    assert accumulated.steps == whole.steps == 6 and accumulated.epochs_done == whole.epochs_done == 3
    assert accumulated.train_tokens == whole.train_tokens and accumulated.loss_tokens == whole.loss_tokens
    # Step 1 is the same model on the same rows, two micro-batch sums vs one (fp32 order only).
    # Each micro-batch's loss is over the step's labelled tokens, not its own mean (a mean of
    # the two means would miss by 5.4e-3 here). Later steps: AdamW carries the ~1e-7 relative
    # gradient difference along; measured max |diff| ~1e-6; 1e-4 leaves room for other kernels.
    assert accumulated.losses[0] == pytest.approx(whole.losses[0], abs=1e-5)
    assert max(abs(a - b) for a, b in zip(accumulated.losses, whole.losses)) < 1e-4
    # batch 2 without accumulation takes other steps: far from both
    assert plain.steps == 6 and plain.epochs_done == 1.5
    assert max(abs(a - b) for a, b in zip(plain.losses, whole.losses)) > 1e-2


def test_bf16_autocasts_the_forward_and_keeps_fp32_weights(student_cache, tmp_path):
    config = TrainingSpec(epochs=5, max_steps=10, **FAST)
    fp32 = train(load_student(SMALL, student_cache), ROWS, config, tmp_path / "fp32")
    student = load_student(SMALL, student_cache)
    dtypes = set()
    student.model.model.layers[0].self_attn.q_proj.register_forward_hook(lambda m, i, out: dtypes.add(out.dtype))
    bf16 = train(student, ROWS, config.model_copy(update={"precision": "bf16"}), tmp_path / "bf16")
    assert dtypes == {torch.bfloat16}  # the matmuls ran in bf16 (the hook sees training and none else)
    assert all(p.dtype == torch.float32 for p in student.model.parameters())
    # bf16 rounds the matmul inputs to 8 bits of mantissa; the loss itself is fp32 (the logits
    # are upcast), so on this student the curves differ by a measured 3.7e-5 relative at most
    # (10 steps, losses 10.8 -> 9.2). Not equal (autocast did something), within 1e-3.
    assert bf16.losses != fp32.losses
    assert all(abs(a - b) < 1e-3 * a for a, b in zip(fp32.losses, bf16.losses))
    assert bf16.losses[-1] < bf16.losses[0] - 1  # and it trains


def test_new_training_fields_stay_out_of_ids_at_their_defaults():
    base = TrainingSpec()
    assert base.identity() == TrainingSpec(workers=1, precision="fp32", grad_accumulation=1).identity()
    assert not {"workers", "precision", "grad_accumulation"} & set(base.identity())
    # workers splits the same batches: same run id, same resume key, whatever N is
    assert TrainingSpec(workers=4).identity() == base.identity()
    assert TrainingSpec(precision="bf16").identity()["precision"] == "bf16"
    assert TrainingSpec(grad_accumulation=4).identity()["grad_accumulation"] == 4
    spec = {"name": "d", "source": {"job": "j"}}
    plain = DistillSpec.model_validate(spec)
    assert DistillSpec.model_validate({**spec, "training": {"workers": 2}}).run_settings() == plain.run_settings()
    assert DistillSpec.model_validate({**spec, "training": {"workers": 2}}).fingerprint == plain.fingerprint


def test_workers_must_not_exceed_batch_size(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text("name: d\nsource: {job: j}\ntraining: {workers: 4, batch_size: 2}\n")
    from factory.distill.spec import load_distill

    with pytest.raises(JobError, match=r"training: .*workers \(4\) must be <= batch_size \(2\)"):
        load_distill(path)
