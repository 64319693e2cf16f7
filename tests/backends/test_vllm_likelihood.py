"""The vllm backend's likelihood signal (score: prompt_logprobs=0, max_tokens=1). No vllm
here (tests/vllm runs the real one in its own venv): a stand-in `vllm` module whose tokenizer
maps a word to 10 + its length, and whose prompt logprobs are a function of the token id,
so the means below are computed by hand."""
from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import pytest
import yaml
from support import fake_job, query

import factory
from factory.backends.vllm_backend import VLLMBackend, mean_prompt_logprob

BOS = 1


def token_logprob(token: int) -> float:
    return -(token % 3) - 0.5


class Tokenizer:
    bos_token_id = BOS

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        assert add_special_tokens is False  # the backend puts the BOS in front itself
        return [10 + len(w) for w in text.split()]


@pytest.fixture
def fake_vllm(monkeypatch):
    asked = []  # (prompts, sampling params) of each generate call

    class LLM:
        def __init__(self, **kwargs):
            pass

        def get_tokenizer(self):
            return Tokenizer()

        def generate(self, prompts, sampling_params=None, use_tqdm=True):
            asked.append((prompts, sampling_params))
            out = []
            for p in prompts:
                ids = p["prompt_token_ids"]
                # each entry holds the prompt's own token and a top-1 that is not it
                out.append(SimpleNamespace(prompt_logprobs=[None] + [
                    {t: SimpleNamespace(logprob=token_logprob(t)), 999: SimpleNamespace(logprob=-0.01)}
                    for t in ids[1:]]))
            return out

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, dict  # dict: the params come back as the kwargs given
    sampling = types.ModuleType("vllm.sampling_params")
    sampling.StructuredOutputsParams = dict
    platforms = types.ModuleType("vllm.platforms")
    platforms.current_platform = SimpleNamespace(is_cpu=lambda: False)
    torch = types.ModuleType("torch")  # the backend imports it; the real one takes ~10 s to import
    for name, module in {"vllm": vllm, "vllm.sampling_params": sampling, "vllm.platforms": platforms,
                         "torch": torch}.items():
        monkeypatch.setitem(sys.modules, name, module)
    return asked


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "ckpt"
    path.mkdir()
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(b"weights")
    return path


def expected(text: str) -> tuple[float, int]:
    tokens = [10 + len(w) for w in text.split()]
    return (sum(map(token_logprob, tokens)) / len(tokens), len(tokens)) if tokens else (0.0, 0)


def test_score_is_the_mean_prompt_logprob_after_the_bos(fake_vllm, checkpoint):
    engine = VLLMBackend(SimpleNamespace(backend="vllm", model=str(checkpoint), endpoint=None))
    scores = engine.score(["a bb ccc", "", "Once upon a time"])
    # "a bb ccc" -> [BOS, 11, 12, 13]: (-2.5 - 0.5 - 1.5) / 3; "" -> [BOS] alone: not sent
    assert scores[0] == pytest.approx((-1.5, 3))
    assert scores[1] == (0.0, 0)
    assert scores[2] == pytest.approx(expected("Once upon a time"))
    ((prompts, params),) = fake_vllm  # one call: the engine batches every text
    assert prompts == [{"prompt_token_ids": [BOS, 11, 12, 13]}, {"prompt_token_ids": [BOS, 14, 14, 11, 14]}]
    assert params["prompt_logprobs"] == 0 and params["max_tokens"] == 1


def test_missing_prompt_logprobs_are_an_error():
    assert mean_prompt_logprob([1, 5], [None, {5: SimpleNamespace(logprob=-2.0)}]) == (-2.0, 1)
    with pytest.raises(RuntimeError, match="vllm returned prompt_logprobs for 0 of 2 prompt tokens"):
        mean_prompt_logprob([1, 5], None)


def test_a_job_gates_on_a_vllm_reference_model(fake_vllm, checkpoint, tmp_path):
    # the fake stories score -1.63 to -1.57 here: -1.6 gates some and keeps some
    job = fake_job(decision={"accept_mean": 6, "reject_mean": 4, "min_likelihood": -1.6,
                             "likelihood_model": {"backend": "vllm", "model": str(checkpoint)}})
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    factory.run(str(path), db=tmp_path / "f.duckdb")
    db = tmp_path / "f.duckdb"
    rows = query(db, """SELECT s.sample_id, s.text, g.value, g.prompt_tokens FROM signals g
                        JOIN samples s USING (sample_id) WHERE g.signal = 'likelihood'""")
    assert rows
    for _, text, value, tokens in rows:
        assert (value, tokens) == pytest.approx(expected(text))
    gated = {r[0] for r in query(db, "SELECT sample_id FROM verdicts WHERE stage = 'likelihood'")}
    assert gated == {sid for sid, _, value, _ in rows if value < -1.6} and 0 < len(gated) < len(rows)
