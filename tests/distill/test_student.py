import json

import pytest
import torch

from factory.distill.spec import LoraSpec, StudentSpec
from factory.distill.student import SMOLLM2_CACHE, StudentError, load_student, smollm2_gguf_path

from support import SMALL


def test_tiny_student_is_a_pure_function_of_its_seed(student_cache):
    a = load_student(SMALL, student_cache)
    b = load_student(SMALL, student_cache)
    c = load_student(SMALL.model_copy(update={"init_seed": 1}), student_cache)
    for (name, x), (_, y), (_, z) in zip(a.model.state_dict().items(), b.model.state_dict().items(),
                                         c.model.state_dict().items()):
        assert torch.equal(x, y), name
    assert not torch.equal(a.model.model.embed_tokens.weight, c.model.model.embed_tokens.weight)
    d = a.description
    assert json.loads(json.dumps(d)) == d
    assert d["kind"] == "tiny" and d["tiny"]["hidden_size"] == 32 and d["dtype"] == "float32"
    # 49,152 x 32 tied embedding + one small layer
    assert d["parameters"] == d["trainable_parameters"] == sum(p.numel() for p in a.model.parameters())
    assert 1_500_000 < d["parameters"] < 1_700_000
    assert a.tokenizer.pad_token is not None and len(a.tokenizer) == a.model.config.vocab_size == 49152


def test_default_tiny_student_is_3_3m_parameters(student_cache):
    d = load_student(StudentSpec(), student_cache).description
    assert 3_200_000 < d["parameters"] < 3_400_000


def test_lora_leaves_only_the_adapters_trainable(student_cache):
    student = load_student(SMALL, student_cache, lora=LoraSpec(r=4, target_modules=["q_proj", "v_proj"]))
    d = student.description
    assert 0 < d["trainable_parameters"] < d["parameters"]
    trainable = [n for n, p in student.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert d["lora"]["r"] == 4


def test_lora_on_a_missing_module_names_the_field(student_cache):
    with pytest.raises(StudentError, match="training.lora.target_modules"):
        load_student(SMALL, student_cache, lora=LoraSpec(target_modules=["no_such_proj"]))


def _hf_error(path, cache) -> str:
    with pytest.raises(StudentError) as err:
        load_student(StudentSpec(kind="hf", path=str(path)), cache)
    message = str(err.value)
    assert "\n" not in message and message.startswith("student.path: ")
    return message


def test_hf_path_errors_say_what_was_expected(tmp_path, student_cache):
    message = _hf_error(tmp_path / "missing", student_cache)
    assert "does not exist" in message and "config.json" in message
    message = _hf_error(tmp_path, student_cache)
    assert "no config.json" in message and "*.safetensors" in message
    (tmp_path / "weights.txt").write_text("x")
    assert "is a file" in _hf_error(tmp_path / "weights.txt", student_cache)
    (tmp_path / "config.json").write_text("{}")
    assert "no weights" in _hf_error(tmp_path, student_cache)


@pytest.mark.model  # reads SmolLM2-135M out of its GGUF: ~23 s
def test_smollm2_gguf_is_dequantized_to_fp32_and_cached(student_cache):
    """The real 135 M model: ~15 s to dequantize the Q4_1 GGUF once, ~1 s from the cache."""
    first = load_student(StudentSpec(kind="smollm2-gguf"), student_cache)
    cached = student_cache / SMOLLM2_CACHE
    assert (cached / "config.json").is_file()
    assert "quantization_config" not in json.loads((cached / "config.json").read_text())
    d = first.description
    assert d["kind"] == "smollm2-gguf" and d["path"] == str(smollm2_gguf_path()) and d["dtype"] == "float32"
    assert 134_000_000 < d["parameters"] < 135_000_000
    ids = first.tokenizer("Question: What is 2 + 3?\nAnswer:", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = first.model(ids).logits
    assert logits.shape == (1, ids.shape[1], 49152) and torch.isfinite(logits).all()

    again = load_student(StudentSpec(kind="smollm2-gguf"), student_cache)  # from the cache
    assert torch.equal(again.model.model.embed_tokens.weight, first.model.model.embed_tokens.weight)
    with torch.no_grad():
        assert torch.equal(again.model(ids).logits, logits)


@pytest.mark.model  # SmolLM2-135M weights with LoRA: ~12 s
def test_smollm2_gguf_student_trains_lora_adapters(student_cache, tmp_path):
    """The real 135 M student through train(): LoRA on q/v (a full fine-tune is ~20 s a step
    of 8 x 256 on 2 cores, DESIGN.md), two tiny steps, merged into the saved model."""
    from factory.distill.format import math_prompt, math_target
    from factory.distill.spec import LoraSpec, TrainingSpec
    from factory.distill.student import load_trained
    from factory.distill.train import train

    student = load_student(StudentSpec(kind="smollm2-gguf"), student_cache, lora=LoraSpec(r=4, alpha=8))
    assert student.description["trainable_parameters"] < student.description["parameters"] / 100
    base_q = student.model.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight.detach().clone()
    rows = [(math_prompt("What is 2 + 3?"), math_target("2 + 3 = 5. The answer is 5."))]
    result = train(student, rows, TrainingSpec(epochs=2, batch_size=1, max_length=48, learning_rate=0.01),
                   tmp_path / "run")
    assert result.steps == 2 and all(torch.isfinite(torch.tensor(result.losses)))
    merged = load_trained(tmp_path / "run" / "final")
    assert not torch.equal(merged.model.model.layers[0].self_attn.q_proj.weight, base_q)  # adapters merged in
