import json
from collections import Counter

import pytest
import torch

from factory.distill.format import math_prompt, math_target
from factory.distill.spec import LoraSpec, StudentSpec, TrainingSpec
from factory.distill.student import load_student, load_trained
from factory.distill.train import IGNORE, TrainError, encode_row, make_batches, train

from support import SMALL

ROWS = [(math_prompt(f"Tom has {i} apples and buys {i + 3} more. How many apples does he have?"),
         math_target(f"{i} + {i + 3} = {2 * i + 3}. The answer is {2 * i + 3}.")) for i in range(8)]
# threads 1: the suite shares 2 cores with other work; 2 threads on 1 free core thrash.
FAST = dict(batch_size=4, learning_rate=3e-3, threads=1)


@pytest.fixture
def tokenizer(cached_smollm2_tokenizer):
    return cached_smollm2_tokenizer


def _weights(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_answer_only_loss_mask(tokenizer):
    prompt, target = ROWS[0]
    row = encode_row(tokenizer, prompt, target, max_length=256)
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    t = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert row["input_ids"] == p + t
    assert row["labels"][:len(p)] == [IGNORE] * len(p)
    assert row["labels"][len(p):] == t == row["input_ids"][len(p):]
    assert row["labels"][-1] == tokenizer.eos_token_id


def test_empty_prompt_puts_the_loss_on_every_token(tokenizer):
    row = encode_row(tokenizer, "", "Once upon a time there was a cat.", max_length=256)
    assert row["labels"] == row["input_ids"] and IGNORE not in row["labels"]
    assert row["input_ids"][-1] == tokenizer.eos_token_id


def test_rows_are_cut_from_the_right(tokenizer):
    prompt, target = ROWS[0]
    full = encode_row(tokenizer, prompt, target, max_length=256)
    cut = encode_row(tokenizer, prompt, target, max_length=len(full["input_ids"]) - 3)
    assert cut["input_ids"] == full["input_ids"][:-3] and cut["labels"] == full["labels"][:-3]
    only_prompt = encode_row(tokenizer, prompt, target, max_length=4)
    assert only_prompt["labels"] == [IGNORE] * 4


def _encoded(tokenizer, n=13):
    rows = ROWS + [("", "Once upon a time a small dog ran home.")] * (n - len(ROWS))
    return [encode_row(tokenizer, p, t, 64) for p, t in rows[:n]]


def test_unpacked_batches_are_right_padded_and_seeded(tokenizer):
    encoded = _encoded(tokenizer)
    pad = tokenizer.pad_token_id
    batches = make_batches(encoded, 4, seed=0, epoch=0, packing=False, max_length=64, pad_id=pad)
    assert [len(b["input_ids"]) for b in batches] == [4, 4, 4, 1]
    for b in batches:
        lengths = b["attention_mask"].sum(1)
        assert b["input_ids"].shape[1] == lengths.max()
        for row, n in zip(range(len(lengths)), lengths):
            assert b["attention_mask"][row, :n].all() and not b["attention_mask"][row, n:].any()
            assert (b["labels"][row, n:] == IGNORE).all() and (b["input_ids"][row, n:] == pad).all()
    again = make_batches(encoded, 4, seed=0, epoch=0, packing=False, max_length=64, pad_id=pad)
    assert all(torch.equal(x["input_ids"], y["input_ids"]) for x, y in zip(batches, again))
    next_epoch = make_batches(encoded, 4, seed=0, epoch=1, packing=False, max_length=64, pad_id=pad)
    assert not all(torch.equal(x["input_ids"], y["input_ids"]) for x, y in zip(batches, next_epoch))


def test_grouped_batches_keep_every_row_and_pad_less():
    # 20% rows of 40 tokens among rows of 8 (the mix-long shape): plain batches of 8 nearly
    # all hold a long row and pad to it; grouped ones hold one length class each.
    lengths = [40 if i % 5 == 0 else 8 for i in range(400)]
    encoded = [{"input_ids": [i % 50 + 1] * n, "labels": [i % 50 + 1] * n} for i, n in enumerate(lengths)]
    plain = make_batches(encoded, 8, seed=0, epoch=0, packing=False, max_length=64, pad_id=0)
    grouped = make_batches(encoded, 8, seed=0, epoch=0, packing=False, max_length=64, pad_id=0,
                           group_by_length=True)
    assert len(grouped) == len(plain) == 50
    assert _labels(grouped) == _labels(plain)  # every row once, nothing cut
    cells = lambda batches: sum(b["input_ids"].numel() for b in batches)  # noqa: E731
    assert cells(grouped) == sum(lengths) < cells(plain) / 2
    widths = [b["input_ids"].shape[1] for b in grouped]
    assert widths != sorted(widths, reverse=True)  # batches shuffled, not longest first
    again = make_batches(encoded, 8, seed=0, epoch=0, packing=False, max_length=64, pad_id=0, group_by_length=True)
    later = make_batches(encoded, 8, seed=0, epoch=1, packing=False, max_length=64, pad_id=0, group_by_length=True)
    assert all(torch.equal(x["input_ids"], y["input_ids"]) for x, y in zip(grouped, again))
    assert not all(torch.equal(x["input_ids"], y["input_ids"]) for x, y in zip(grouped, later))


def test_length_buckets_keep_every_row_pad_little_and_mix_rows_within_a_class():
    # the mix-long shape again, with lengths spread within each class: short rows 5-8 tokens
    # (class 5-8), long ones 33-40 (class 33-64); rows of one class come in random order.
    lengths = [33 + i % 8 if i % 5 == 0 else 5 + i % 4 for i in range(400)]
    encoded = [{"input_ids": [i % 50 + 1] * n, "labels": [i % 50 + 1] * n} for i, n in enumerate(lengths)]
    plain = make_batches(encoded, 8, seed=0, epoch=0, packing=False, max_length=64, pad_id=0)
    buckets = make_batches(encoded, 8, seed=0, epoch=0, packing=False, max_length=64, pad_id=0,
                           group_by_length="buckets")
    assert len(buckets) == len(plain) == 50
    assert _labels(buckets) == _labels(plain)  # every row once, nothing cut
    cells = lambda batches: sum(b["input_ids"].numel() for b in batches)  # noqa: E731
    assert cells(buckets) < 1.3 * sum(lengths) and cells(buckets) < cells(plain) / 2
    rows = [[int(m.sum()) for m in b["attention_mask"]] for b in buckets]
    assert all(max(r) <= 8 or min(r) >= 33 for r in rows)  # 80 long rows: 10 whole batches, no remainder
    assert any(len(set(r)) > 1 for r in rows)  # within a class, lengths (so problems) are mixed, not sorted
    widths = [b["input_ids"].shape[1] for b in buckets]
    assert widths != sorted(widths) and widths != sorted(widths, reverse=True)  # batches shuffled
    again = make_batches(encoded, 8, seed=0, epoch=0, packing=False, max_length=64, pad_id=0, group_by_length="buckets")
    assert all(torch.equal(x["input_ids"], y["input_ids"]) for x, y in zip(buckets, again))


def test_grouping_is_refused_with_packing_and_leaves_ids_alone_when_off():
    from factory.distill.spec import TrainingSpec
    with pytest.raises(ValueError, match="group_by_length is for unpacked rows"):
        TrainingSpec(packing=True, group_by_length=True)
    assert "group_by_length" not in TrainingSpec().identity()
    assert TrainingSpec(group_by_length=True).identity()["group_by_length"] is True
    assert TrainingSpec(group_by_length="buckets").identity()["group_by_length"] == "buckets"
    with pytest.raises(ValueError, match="group_by_length is for unpacked rows"):
        TrainingSpec(packing=True, group_by_length="buckets")


def _labels(batches) -> Counter:
    return Counter(t for b in batches for t in b["labels"].flatten().tolist() if t != IGNORE)


def test_packing_fills_blocks_and_keeps_every_label(tokenizer):
    encoded = _encoded(tokenizer)
    pad = tokenizer.pad_token_id
    plain = make_batches(encoded, 4, seed=0, epoch=0, packing=False, max_length=64, pad_id=pad)
    packed = make_batches(encoded, 4, seed=0, epoch=0, packing=True, max_length=64, pad_id=pad)
    assert all(b["input_ids"].shape[1] == 64 for b in packed)
    blocks = sum(len(b["input_ids"]) for b in packed)
    tokens = sum(len(r["input_ids"]) for r in encoded)
    assert blocks == -(-tokens // 64) < len(encoded)  # several rows share a block
    assert sum(int(b["attention_mask"].sum()) for b in packed) == tokens
    assert _labels(packed) == _labels(plain)

    same = make_batches(encoded, 4, seed=0, epoch=0, packing=True, max_length=64, pad_id=pad)
    other = make_batches(encoded, 4, seed=1, epoch=0, packing=True, max_length=64, pad_id=pad)
    assert all(torch.equal(x["input_ids"], y["input_ids"]) for x, y in zip(packed, same))
    assert not torch.equal(packed[0]["input_ids"], other[0]["input_ids"])


@pytest.fixture(scope="module")
def trained(student_cache, tmp_path_factory):
    """30 steps on 8 repeated rows (8 epochs of 2 batches, capped by max_steps)."""
    run_dir = tmp_path_factory.mktemp("run")
    student = load_student(SMALL, student_cache)
    config = TrainingSpec(epochs=20, max_steps=30, checkpoint_every=10, **FAST)
    seen = []
    threads = torch.get_num_threads()
    result = train(student, ROWS, config, run_dir, on_step=lambda *a: seen.append(a))
    assert torch.get_num_threads() == threads  # config.threads holds only during train()
    return student, config, run_dir, result, seen


def test_training_reduces_the_loss(trained):
    student, config, run_dir, result, seen = trained
    assert result.steps == len(result.losses) == 30 and result.epochs_done == 15
    assert [s[:2] for s in seen] == [(n, 30) for n in range(1, 31)]
    assert result.first_loss > 10  # ~ln(49152) = 10.8 at the random init
    assert result.final_loss < 0.7 * result.first_loss
    assert result.rows == 8 and result.resumed_from_step == 0 and result.rows_without_target == 0
    assert result.train_tokens > result.loss_tokens > 0
    assert result.tokens_per_second > 0 and result.seconds > 0
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-000010", "step-000020"]


def test_a_finished_run_is_not_retrained(trained, student_cache):
    student, config, run_dir, result, _ = trained
    fresh = load_student(SMALL, student_cache)
    before = _weights(fresh.model)

    def never(*_):
        raise AssertionError("retrained")

    again = train(fresh, ROWS, config, run_dir, on_step=never)
    assert again == result
    assert all(torch.equal(v, fresh.model.state_dict()[k]) for k, v in before.items())
    with pytest.raises(TrainError, match="other rows or settings"):
        train(fresh, ROWS[:4], config, run_dir)


def test_final_dir_loads_with_load_trained_and_as_kind_hf(trained, student_cache):
    student, _, run_dir, result, _ = trained
    assert result.checkpoint == str((run_dir / "final").resolve())
    recorded = json.loads((run_dir / "final" / "train_result.json").read_text())
    assert recorded["steps"] == 30
    ids = student.tokenizer(ROWS[0][0], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = student.model(ids).logits
    for loaded in (load_trained(run_dir / "final"),
                   load_student(StudentSpec(kind="hf", path=result.checkpoint), student_cache)):
        assert not loaded.model.training and loaded.description["kind"] == "hf"
        assert loaded.description["parameters"] == student.description["parameters"]
        with torch.no_grad():
            assert torch.allclose(loaded.model(ids).logits, expected, atol=1e-5)


class Killed(Exception):
    pass


def test_a_killed_run_resumes_to_the_same_weights(student_cache, tmp_path):
    # 8 rows / batch 2 = 4 steps an epoch; 3 epochs capped at 9 steps; checkpoints at 2, 4, 6, 8.
    config = TrainingSpec(epochs=3, max_steps=9, checkpoint_every=2, **{**FAST, "batch_size": 2})
    whole = load_student(SMALL, student_cache)
    uninterrupted = train(whole, ROWS, config, tmp_path / "whole")

    def kill_after_5(step, total, loss):
        if step == 5:
            raise Killed

    with pytest.raises(Killed):
        train(load_student(SMALL, student_cache), ROWS, config, tmp_path / "killed", on_step=kill_after_5)
    checkpoints = tmp_path / "killed" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-000002", "step-000004"]
    assert not (tmp_path / "killed" / "final").exists()
    # What a kill -9 in the middle of writing step 6 leaves: a temp dir, never a step-* dir.
    (checkpoints / ".tmp-step-000006-x").mkdir()
    (checkpoints / ".tmp-step-000006-x" / "state.pt").write_bytes(b"half")

    with pytest.raises(TrainError, match="a checkpoint of other rows or settings"):
        train(load_student(SMALL, student_cache), ROWS[:6], config, tmp_path / "killed")

    resumed_student = load_student(SMALL, student_cache)
    resumed = train(resumed_student, ROWS, config, tmp_path / "killed")
    assert resumed.resumed_from_step == 4 and resumed.steps == 9
    assert resumed.losses == uninterrupted.losses
    assert resumed.train_tokens == uninterrupted.train_tokens
    assert not (checkpoints / ".tmp-step-000006-x").exists()
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-000006", "step-000008"]
    a, b = whole.model.state_dict(), resumed_student.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    final_a = load_trained(tmp_path / "whole" / "final").model.state_dict()
    final_b = load_trained(tmp_path / "killed" / "final").model.state_dict()
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)


def test_lora_trains_the_adapters_and_saves_a_merged_model(student_cache, tmp_path):
    student = load_student(SMALL, student_cache, lora=LoraSpec(r=8, target_modules=["q_proj", "v_proj", "o_proj"]))
    frozen = {n: p.clone() for n, p in student.model.named_parameters() if not p.requires_grad}
    result = train(student, ROWS, TrainingSpec(max_steps=12, epochs=10, **{**FAST, "learning_rate": 2e-2}), tmp_path)
    assert result.final_loss < result.first_loss
    assert all(torch.equal(p, frozen[n]) for n, p in student.model.named_parameters() if not p.requires_grad)
    assert hasattr(student.model, "peft_config")  # the caller's model stays a peft model
    loaded = load_trained(tmp_path / "final")
    assert not any("lora" in k for k in loaded.model.state_dict())
    ids = student.tokenizer(ROWS[1][0], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(loaded.model(ids).logits, student.model(ids).logits, atol=1e-4)


def test_packed_training_runs(student_cache, tmp_path, tokenizer):
    rows = ROWS + [("", "Once upon a time a small dog ran home. It was happy.")] * 4
    tokens = sum(len(encode_row(tokenizer, p, t, 32)["input_ids"]) for p, t in rows)
    assert 8 * 32 < tokens <= 12 * 32  # 12 blocks or fewer: 3 batches of 4 an epoch
    result = train(load_student(SMALL, student_cache), rows,
                   TrainingSpec(max_steps=4, packing=True, max_length=32, **FAST), tmp_path)
    assert result.steps == 4 and all(loss == loss for loss in result.losses)  # no NaN
    # the whole first epoch, then the first batch of the second: 4 full blocks of 32
    assert result.train_tokens == tokens + 4 * 32


def test_rows_without_a_target_within_max_length_are_dropped_and_counted(student_cache, tmp_path):
    student = load_student(SMALL, student_cache)
    too_long = (math_prompt("x " * 40), " 1")
    with pytest.raises(TrainError, match="max_length 16"):
        train(student, [too_long], TrainingSpec(max_length=16, **FAST), tmp_path / "none")
    short = [(math_prompt("1 + 1?"), math_target("2")), ("", "A cat sat.")]
    result = train(student, [too_long] + short, TrainingSpec(max_length=16, max_steps=1, **FAST), tmp_path / "some")
    assert result.rows == 2 and result.rows_without_target == 1


def test_a_final_dir_that_train_did_not_write_is_not_taken_for_done(student_cache, tmp_path):
    (tmp_path / "final").mkdir()
    with pytest.raises(TrainError, match="no train_result.json"):
        train(load_student(SMALL, student_cache), ROWS, TrainingSpec(**FAST), tmp_path)
