"""The vllm backend builds its engine with automatic prefix caching on (the k reviewers of a
sample send the same prompt). No vllm here (tests/vllm runs the real one in its own venv):
a stand-in `vllm` module records what LLM(...) was given."""
from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import pytest

from factory.backends.vllm_backend import VLLMBackend


@pytest.fixture
def fake_vllm(monkeypatch):
    built = []

    class LLM:
        def __init__(self, **kwargs):
            built.append(kwargs)

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, dict
    sampling = types.ModuleType("vllm.sampling_params")
    sampling.StructuredOutputsParams = dict
    platforms = types.ModuleType("vllm.platforms")
    platforms.current_platform = SimpleNamespace(is_cpu=lambda: False)  # as on a GPU
    torch = types.ModuleType("torch")  # the backend imports it; the real one takes ~10 s to import
    for name, module in {"vllm": vllm, "vllm.sampling_params": sampling, "vllm.platforms": platforms,
                         "torch": torch}.items():
        monkeypatch.setitem(sys.modules, name, module)
    return built


def test_engines_are_built_with_prefix_caching(fake_vllm, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    VLLMBackend(SimpleNamespace(backend="vllm", model=str(tmp_path), endpoint=None))
    assert len(fake_vllm) == 1
    assert fake_vllm[0]["enable_prefix_caching"] is True
    assert fake_vllm[0]["model"] == str(tmp_path)
