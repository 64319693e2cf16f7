"""On-policy distillation (method gkd): the divergence against hand-computed values on a
2-token vocabulary, the student's samples as the targets of on-policy micro-batches (seeded,
leaving the caller's RNG alone), a killed GKD run resumed to the same weights, the spec's
refusals, and `factory distill` with method gkd end to end on a stories job."""
import math

import pytest
import torch

from factory.distill.gkd import IGNORE, generalized_jsd, gkd_loss, is_on_policy, on_policy_batch, prompt_lengths
from factory.distill.kd import Teacher, check_same_tokenizer
from factory.distill.kd_cache import TopKCache
from factory.distill.spec import GKDSpec, TeacherSpec, TrainingSpec
from factory.distill.student import StudentError, load_student
from factory.distill.train import make_batches, encode_row, train

from support import SMALL
from .test_kd import _other_tokenizer_dir, teacher_dir  # noqa: F401 (a fixture)
from .test_train import FAST, ROWS, Killed


def _kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


def test_generalized_jsd_on_a_two_token_vocabulary_matches_the_hand_computed_values():
    # Teacher P = (0.8, 0.2), student Q = (0.25, 0.75) at T = 1.
    P, Q = (0.8, 0.2), (0.25, 0.75)
    t = torch.tensor([[math.log(0.8), math.log(0.2)]], dtype=torch.float64)
    s = torch.tensor([[0.0, math.log(3)]], dtype=torch.float64)
    assert float(generalized_jsd(s, t, 0.0, 1.0)[0]) == pytest.approx(_kl(P, Q), abs=1e-12)  # forward KL
    assert float(generalized_jsd(s, t, 1.0, 1.0)[0]) == pytest.approx(_kl(Q, P), abs=1e-12)  # reverse KL
    for beta in (0.5, 0.1, 0.9):
        M = [beta * p + (1 - beta) * q for p, q in zip(P, Q)]
        expected = beta * _kl(P, M) + (1 - beta) * _kl(Q, M)
        assert float(generalized_jsd(s, t, beta, 1.0)[0]) == pytest.approx(expected, abs=1e-12)
    # Temperature 2 softens both sides: the logits are halved before the softmax.
    soft_p = [math.exp(x / 2) for x in (math.log(0.8), math.log(0.2))]
    soft_q = [math.exp(x / 2) for x in (0.0, math.log(3))]
    soft_p, soft_q = [x / sum(soft_p) for x in soft_p], [x / sum(soft_q) for x in soft_q]
    assert float(generalized_jsd(s, t, 0.0, 2.0)[0]) == pytest.approx(_kl(soft_p, soft_q), abs=1e-12)
    # Equal distributions: 0 at every beta.
    assert float(generalized_jsd(t, t, 0.5, 1.0)[0]) == pytest.approx(0.0, abs=1e-12)


def test_gkd_loss_is_the_mean_over_labelled_positions_only():
    gkd = GKDSpec(beta=0.0)
    student = torch.zeros(1, 3, 2, dtype=torch.float64)  # uniform everywhere
    teacher = torch.tensor([[[5.0, -5.0], [math.log(0.8), math.log(0.2)], [0.0, 0.0]]], dtype=torch.float64)
    labels = torch.tensor([[IGNORE, 1, IGNORE]])  # only position 0 predicts a labelled token
    assert float(gkd_loss(student, teacher, labels, gkd)) == pytest.approx(
        _kl((1 / (1 + math.exp(-10)), 1 / (1 + math.exp(10))), (0.5, 0.5)), abs=1e-9)
    none = torch.full((1, 3), IGNORE)
    assert float(gkd_loss(student, teacher, none, gkd)) == 0.0


def _batch(student_cache, rows, batch_size=4):
    tok = load_student(SMALL, student_cache).tokenizer
    encoded = [encode_row(tok, p, t, 64) for p, t in rows]
    return make_batches(encoded, batch_size, 0, 0, False, 64, tok.pad_token_id)[0], tok, encoded


def test_the_student_continues_each_rows_prompt_and_its_samples_become_the_labels(student_cache):
    gkd = GKDSpec(max_new_tokens=6, prompt_tokens=3)
    batch, tok, encoded = _batch(student_cache, [("Q: 1+1?", " A: 2"), ("", "Once upon a time there was a cat.")], 2)
    lengths = prompt_lengths(batch, gkd)
    by_prompt = {len(tok("Q: 1+1?", add_special_tokens=False)["input_ids"]), 3}
    assert set(lengths) == by_prompt  # a prompted row keeps its prompt; a story gives its first 3 tokens
    student = load_student(SMALL, student_cache).model
    student.train()
    rng = torch.get_rng_state()
    a = on_policy_batch(student, batch, gkd, 0, 5, 0, tok.pad_token_id, tok.eos_token_id)
    assert torch.equal(torch.get_rng_state(), rng) and student.training  # caller's RNG and mode untouched
    b = on_policy_batch(student, batch, gkd, 0, 5, 0, tok.pad_token_id, tok.eos_token_id)
    c = on_policy_batch(student, batch, gkd, 0, 6, 0, tok.pad_token_id, tok.eos_token_id)
    assert torch.equal(a["input_ids"], b["input_ids"])  # the same (seed, step, micro-batch): the same samples
    assert not torch.equal(a["input_ids"], c["input_ids"])
    for row, mask, labels, n in zip(a["input_ids"], a["attention_mask"], a["labels"], lengths):
        original = next(r["input_ids"][:n] for r in encoded if r["input_ids"][:n] == row[:n].tolist())
        assert row[:n].tolist() == original and (labels[:n] == IGNORE).all()
        length = int(mask.sum())
        assert 1 <= length - n <= 6  # the sample: at most max_new_tokens, labelled
        assert labels[n:length].tolist() == row[n:length].tolist() and (labels[length:] == IGNORE).all()


def test_on_policy_is_a_seeded_share_of_the_micro_batches():
    share = GKDSpec(on_policy=0.5)
    flags = [is_on_policy(share, 0, step, 0) for step in range(400)]
    assert 160 < sum(flags) < 240 and flags == [is_on_policy(share, 0, step, 0) for step in range(400)]
    assert not any(is_on_policy(GKDSpec(on_policy=0.0), 0, s, 0) for s in range(50))
    assert all(is_on_policy(GKDSpec(on_policy=1.0), 0, s, 0) for s in range(50))


GKD = dict(method="gkd", gkd=GKDSpec(teacher=TeacherSpec(kind="hf", path="unused"), on_policy=0.5, max_new_tokens=8))


def _teacher(teacher_dir, student_cache, tmp_path):
    return Teacher(TeacherSpec(kind="hf", path=str(teacher_dir)), student_cache, TopKCache(tmp_path / "unused"))


def test_gkd_trains_toward_the_teacher_and_a_killed_run_resumes_to_the_same_weights(
        teacher_dir, student_cache, tmp_path):
    # 8 rows / batch 2 = 4 steps an epoch; 6 steps; checkpoints at 2 and 4; killed after 3.
    config = TrainingSpec(epochs=2, max_steps=6, checkpoint_every=2, **GKD, **{**FAST, "batch_size": 2})
    whole = load_student(SMALL, student_cache)
    uninterrupted = train(whole, ROWS, config, tmp_path / "whole", teacher=_teacher(teacher_dir, student_cache, tmp_path))
    assert uninterrupted.kd["method"] == "gkd" and 0 < uninterrupted.kd["on_policy_batches"] < 6
    assert uninterrupted.kd["last_divergence"] > 0 and uninterrupted.losses[-1] < uninterrupted.losses[0]

    def kill_after_3(step, total, loss):
        if step == 3:
            raise Killed

    with pytest.raises(Killed):
        train(load_student(SMALL, student_cache), ROWS, config, tmp_path / "killed", on_step=kill_after_3,
              teacher=_teacher(teacher_dir, student_cache, tmp_path))
    resumed_student = load_student(SMALL, student_cache)
    resumed = train(resumed_student, ROWS, config, tmp_path / "killed", teacher=_teacher(teacher_dir, student_cache, tmp_path))
    assert resumed.resumed_from_step == 2 and resumed.steps == 6
    assert resumed.losses == uninterrupted.losses  # the same samples were drawn after the resume
    a, b = whole.model.state_dict(), resumed_student.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_method_gkd_fills_the_defaults_and_refuses_workers_and_a_stray_gkd_block():
    from pydantic import ValidationError

    gkd = TrainingSpec(method="gkd").gkd
    assert gkd == GKDSpec() and gkd.teacher.kind == "smollm2-gguf" and (gkd.beta, gkd.on_policy) == (0.5, 0.5)
    with pytest.raises(ValidationError, match="gkd is read only when method is 'gkd'"):
        TrainingSpec(method="kd", gkd={})
    with pytest.raises(ValidationError, match="method gkd trains in one process"):
        TrainingSpec(method="gkd", workers=2)
    # sft ids and keys stay what they were: no gkd field at its default
    assert "gkd" not in TrainingSpec().identity() and "gkd" in TrainingSpec(method="gkd").identity()


def test_a_gkd_teacher_with_another_tokenizer_is_one_line_naming_the_gkd_field(student_cache, tmp_path):
    path = _other_tokenizer_dir(student_cache, tmp_path)
    with pytest.raises(StudentError) as err:
        check_same_tokenizer(SMALL, TeacherSpec(kind="hf", path=str(path)), student_cache, "training.gkd")
    line = str(err.value)
    assert "\n" not in line and line.startswith("training.gkd.teacher:") and "GKD needs one tokenizer" in line


def test_factory_distill_with_method_gkd_trains_a_stories_student_and_records_the_run(
        tmp_path, teacher_dir, student_cache, monkeypatch):
    """The real path: `factory distill` on a stories job, the student sampling from its openings
    and the (tiny hf) teacher scoring them, then the held-out measures as for sft and kd."""
    from support import fake_job, query
    from factory.cli import main
    from factory.pipeline import run_job
    from factory.spec import parse_job

    from .test_distill_cli import write_spec

    monkeypatch.setenv("FACTORY_CACHE", str(student_cache))
    db = tmp_path / "s.duckdb"
    run_job(parse_job(fake_job(name="stories", num_samples=40)), db=db)
    gkd = {"teacher": {"kind": "hf", "path": str(teacher_dir)}, "on_policy": 0.5, "max_new_tokens": 12}
    spec = write_spec(tmp_path, db, name="gkd-stories", task="stories", source={"job": "stories"},
                      training={"method": "gkd", "gkd": gkd, "epochs": 2, "batch_size": 4, "max_length": 64},
                      evaluation={"source": "held_out", "problems": 3, "max_new_tokens": 12,
                                  "grading": {"prompt_words": 6}})
    assert main(["distill", spec, "--quiet"]) == 0
    (row,) = query(db, "SELECT json_extract_string(hyperparameters, '$.method'), "
                       "json_extract(training, '$.kd.on_policy_batches'), json_extract(training, '$.steps'), "
                       "json_extract(metrics, '$.heldout_loss') FROM runs")
    assert row[0] == "gkd" and 0 < int(row[1]) < int(row[2]) and float(row[3]) > 0
