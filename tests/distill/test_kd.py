"""Logit KD: the loss against a hand-computed value, the teacher's top-k cache, resume of a
killed KD run, and a teacher of another tokenizer refused before anything is written."""
import math
from pathlib import Path

import pytest
import torch

from factory.distill.kd import IGNORE, Teacher, check_same_tokenizer, kd_loss, teacher_targets
from factory.distill.kd_cache import TopKCache
from factory.distill.spec import DistillSpec, KDSpec, StudentSpec, TeacherSpec, TrainingSpec
from factory.distill.student import StudentError, load_student, load_trained
from factory.distill.train import train

from support import SMALL
from .test_train import FAST, ROWS, Killed


def test_kd_loss_on_a_two_token_vocabulary_matches_the_hand_computed_value():
    # One answer position: the student's logits there are [0, ln 3] (p = 1/4, 3/4 at T = 1),
    # the label is token 1; the teacher keeps its top 1 (token 0, p_T = 0.8), so the rest
    # bucket is token 1 with 0.2: with V = 2 the bucketed KL is the exact KL.
    T, alpha = 2.0, 0.25
    logits = torch.tensor([[[0.0, math.log(3.0)], [5.0, -5.0]]], dtype=torch.float64)
    labels = torch.tensor([[IGNORE, 1]])
    kd_ids = torch.tensor([[[0], [0]]])
    kd_logp = torch.tensor([[[0.0], [math.log(0.8)]]], dtype=torch.float64)
    kd_mask = torch.tensor([[False, True]])
    loss, ce, kl = kd_loss(logits, labels, kd_ids, kd_logp, kd_mask, alpha, T)
    # CE = -ln(3/4) = 0.287682. Student at T = 2: logits [0, ln3 / 2] -> q0 = 1 / (1 + sqrt 3) =
    # 0.366025, q1 = 0.633975. KL = 0.8 ln(0.8 / 0.366025) + 0.2 ln(0.2 / 0.633975) = 0.394789.
    # loss = 0.25 * 0.287682 + 0.75 * 4 * 0.394789 = 1.256287.
    assert ce == pytest.approx(0.287682, abs=1e-6)
    assert kl == pytest.approx(0.394789, abs=1e-6)
    assert float(loss) == pytest.approx(1.256287, abs=1e-6)
    assert float(loss) == pytest.approx(alpha * ce + (1 - alpha) * T ** 2 * kl, rel=1e-12)


def test_the_rest_bucket_is_a_lower_bound_of_the_full_kl_and_exact_when_k_covers_the_vocabulary():
    torch.manual_seed(0)
    V, T = 6, 1.5
    s, t = torch.randn(1, 3, V, dtype=torch.float64), torch.randn(1, 3, V, dtype=torch.float64)
    labels = torch.tensor([[IGNORE, 2, 4]])
    t_logp = torch.log_softmax(t / T, -1)
    full = (t_logp.exp() * (t_logp - torch.log_softmax(s / T, -1))).sum(-1)[0, :2].mean()

    def bucketed(k):
        values, ids = t_logp.topk(k, -1)
        # aligned to tokens: token j's target comes from position j - 1
        ids = torch.cat([torch.zeros(1, 1, k, dtype=torch.long), ids[:, :-1]], 1)
        values = torch.cat([torch.zeros(1, 1, k, dtype=torch.float64), values[:, :-1]], 1)
        return kd_loss(s, labels, ids, values, torch.tensor([[False, True, True]]), 0.0, T)[2]

    assert bucketed(V) == pytest.approx(float(full), abs=1e-9)
    assert bucketed(V - 1) == pytest.approx(float(full), abs=1e-9)  # one token left: the bucket is it
    assert bucketed(2) < float(full)


@pytest.fixture(scope="module")
def teacher_dir(student_cache, tmp_path_factory):
    """A teacher sharing the tokenizer: the tiny architecture with other initial weights."""
    path = tmp_path_factory.mktemp("teacher")
    teacher = load_student(StudentSpec(kind="tiny", tiny=SMALL.tiny, init_seed=7), student_cache)
    teacher.model.save_pretrained(path)
    teacher.tokenizer.save_pretrained(path)
    return path


def _teacher(teacher_dir, student_cache, cache_root) -> Teacher:
    return Teacher(TeacherSpec(kind="hf", path=str(teacher_dir)), student_cache, TopKCache(cache_root))


KD = dict(method="kd", kd=KDSpec(teacher=TeacherSpec(kind="hf", path="unused"), alpha=0.5, temperature=2.0, top_k=8))


def test_the_second_student_reads_the_teachers_top_k_from_the_cache(teacher_dir, student_cache, tmp_path):
    config = TrainingSpec(epochs=1, max_steps=2, **KD, **FAST)
    first = _teacher(teacher_dir, student_cache, tmp_path / "kd-cache")
    a = train(load_student(SMALL, student_cache), ROWS, config, tmp_path / "a", teacher=first)
    assert first.forward_passes == 1 and first.rows_scored == 8  # 8 rows, 8 a teacher pass
    assert a.kd["cache_misses"] == 8 and a.kd["cache_hits"] == 0 and a.kd["teacher_forward_passes"] == 1
    assert a.steps == 2 and all(loss == loss for loss in a.losses)

    # Another student (other initial weights), another process's Teacher: all 8 rows hit.
    second = _teacher(teacher_dir, student_cache, tmp_path / "kd-cache")
    other = StudentSpec(kind="tiny", tiny=SMALL.tiny, init_seed=3)
    b = train(load_student(other, student_cache), ROWS, config, tmp_path / "b", teacher=second)
    assert second.forward_passes == 0 and second._model is None  # never even loaded
    assert b.kd["cache_hits"] == 8 and b.kd["cache_misses"] == 0

    # What the cache holds is what the teacher gives: top-8 of log_softmax(logits / T).
    tok = load_student(SMALL, student_cache).tokenizer
    ids = tok(ROWS[0][0] + ROWS[0][1], add_special_tokens=False)["input_ids"]
    cached = teacher_targets(second, [ids], config.kd)[0]
    with torch.no_grad():
        logits = load_trained(teacher_dir).model(torch.tensor([ids])).logits[0]
    expected = torch.log_softmax(logits / 2.0, -1).topk(8, -1)
    assert torch.equal(cached["kd_ids"][1:], expected.indices[:-1])
    assert torch.allclose(cached["kd_logp"][1:], expected.values[:-1], atol=1e-5)
    assert cached["kd_mask"].tolist() == [False] + [True] * (len(ids) - 1)


def test_an_sft_config_needs_no_teacher_and_kd_refuses_to_run_without_one(student_cache, tmp_path):
    from factory.distill.train import TrainError

    with pytest.raises(TrainError, match="needs a teacher"):
        train(load_student(SMALL, student_cache), ROWS, TrainingSpec(max_steps=1, **KD, **FAST), tmp_path)


def test_a_killed_kd_run_resumes_to_the_same_weights(teacher_dir, student_cache, tmp_path):
    # 8 rows / batch 2 = 4 steps an epoch; 6 steps; checkpoints at 2 and 4; killed after 3.
    config = TrainingSpec(epochs=2, max_steps=6, checkpoint_every=2, **KD, **{**FAST, "batch_size": 2})
    whole = load_student(SMALL, student_cache)
    uninterrupted = train(whole, ROWS, config, tmp_path / "whole",
                          teacher=_teacher(teacher_dir, student_cache, tmp_path / "c1"))

    def kill_after_3(step, total, loss):
        if step == 3:
            raise Killed

    with pytest.raises(Killed):  # its own cache: the killed run computes its targets itself
        train(load_student(SMALL, student_cache), ROWS, config, tmp_path / "killed", on_step=kill_after_3,
              teacher=_teacher(teacher_dir, student_cache, tmp_path / "c2"))
    resumed_teacher = _teacher(teacher_dir, student_cache, tmp_path / "c2")
    resumed_student = load_student(SMALL, student_cache)
    resumed = train(resumed_student, ROWS, config, tmp_path / "killed", teacher=resumed_teacher)
    assert resumed.resumed_from_step == 2 and resumed.steps == 6
    assert resumed_teacher.forward_passes == 0  # the resumed run read its targets from the cache
    assert resumed.losses == uninterrupted.losses
    a, b = whole.model.state_dict(), resumed_student.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_kd_settings_enter_the_resume_key(teacher_dir, student_cache, tmp_path):
    from factory.distill.train import TrainError

    config = TrainingSpec(epochs=1, max_steps=2, checkpoint_every=1, **KD, **{**FAST, "batch_size": 2})
    with pytest.raises(Killed):
        train(load_student(SMALL, student_cache), ROWS, config, tmp_path,
              on_step=lambda step, *_: (_ for _ in ()).throw(Killed), teacher=_teacher(teacher_dir, student_cache, tmp_path / "c"))
    hotter = config.model_copy(update={"kd": config.kd.model_copy(update={"temperature": 4.0})})
    with pytest.raises(TrainError, match="a checkpoint of other rows or settings"):
        train(load_student(SMALL, student_cache), ROWS, hotter, tmp_path,
              teacher=_teacher(teacher_dir, student_cache, tmp_path / "c"))


def test_method_kd_fills_the_defaults_and_kd_without_method_kd_is_refused():
    from pydantic import ValidationError

    kd = TrainingSpec(method="kd").kd
    assert kd == KDSpec() and kd.teacher.kind == "smollm2-gguf" and (kd.alpha, kd.temperature, kd.top_k) == (0.5, 1.0, 20)
    with pytest.raises(ValidationError, match="kd is read only when method is 'kd'"):
        TrainingSpec(kd={})
    with pytest.raises(ValidationError, match="kind 'hf' needs path"):
        TrainingSpec(method="kd", kd={"teacher": {"kind": "hf"}})


def _other_tokenizer_dir(student_cache, tmp_path):
    tok = load_student(SMALL, student_cache).tokenizer
    tok.add_tokens(["<not-in-smollm2>"])
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    tok.save_pretrained(tmp_path)
    return tmp_path


def test_a_teacher_with_another_tokenizer_is_one_line_naming_both(student_cache, tmp_path):
    path = _other_tokenizer_dir(student_cache, tmp_path)
    with pytest.raises(StudentError) as err:
        check_same_tokenizer(SMALL, TeacherSpec(kind="hf", path=str(path)), student_cache)
    line = str(err.value)
    assert "\n" not in line and str(path.resolve()) in line and "49153 tokens" in line
    assert "SmolLM2" in line and "49152 tokens" in line


def test_factory_distill_with_a_mismatched_teacher_exits_2_and_writes_nothing(student_cache, math_db, tmp_path,
                                                                               monkeypatch, capsys):
    from support import query
    from factory.cli import main

    from .test_distill_cli import write_spec

    monkeypatch.setenv("FACTORY_CACHE", str(student_cache))
    teacher = _other_tokenizer_dir(student_cache, tmp_path / "teacher")
    spec = write_spec(tmp_path, math_db, name="kd-mismatch", training={
        "method": "kd", "kd": {"teacher": {"kind": "hf", "path": str(teacher)}}, "max_steps": 1})
    before = query(math_db, "SELECT count(*) FROM mixtures")
    assert main(["distill", spec, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "teacher's tokenizer" in err and "student's tokenizer SmolLM2" in err and "Traceback" not in err
    assert query(math_db, "SELECT count(*) FROM mixtures") == before
    assert not (tmp_path / "runs").exists() and not Path(f"{math_db}.kd-cache").exists()


@pytest.mark.model
def test_the_smollm2_teacher_trains_a_tiny_student_for_two_steps(student_cache, tmp_path):
    """The real teacher: SmolLM2-135M dequantized from the GGUF (~14 s once, cached in
    student_cache), 4 rows, 2 steps."""
    config = TrainingSpec(epochs=1, max_steps=2, method="kd", kd=KDSpec(top_k=20), **{**FAST, "batch_size": 2})
    check_same_tokenizer(SMALL, config.kd.teacher, student_cache)
    teacher = Teacher(config.kd.teacher, student_cache, TopKCache(tmp_path / "c"))
    result = train(load_student(SMALL, student_cache), ROWS[:4], config, tmp_path / "run", teacher=teacher)
    assert result.steps == 2 and result.kd["cache_misses"] == 4 and teacher.forward_passes == 1
    assert all(loss == loss and loss > 0 for loss in result.losses)
