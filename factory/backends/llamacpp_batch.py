"""Batched decoding for the llamacpp backend (execution.slots_per_engine > 1): llama.cpp's
batch API, one sequence per request, a seeded sampler chain (and JSON-schema grammar) per
request, continuous batching, and shared prompt prefixes.

Shared prefixes: the k reviewers of one sample get the same rendered prompt (only their
seeds differ), so a call's requests often repeat a prompt. A request whose prompt another
sequence of the call already holds is not prefilled again: that sequence's KV cache is
copied into the request's sequence (llama_memory_seq_cp) and, when the prompts are equal,
its first token is sampled from the logits row saved when the prompt was prefilled. A
prompt that only begins like another shares the whole prefill chunks (BATCH_TOKENS) they
have in common, and prefills the rest.

Why whole chunks only: a token's KV and logits come out of the llama_decode call that
computed it, and prefill cuts every prompt into chunks at positions 0, 512, 1024... So a
copy of whole chunks, plus the same chunks of the rest, does bit for bit what prefilling
the prompt alone does, and a text is the same with or without sharing (tested on the real
model). A prefix cut mid-chunk would put its tail tokens in another decode call, which on
this build gives the same floats but nothing in llama.cpp promises that. Demo reviewer
prompts are ~100-400 tokens, under one chunk: they share when equal, which is the k
reviewers of a sample (3x fewer reviewer prefill tokens with 3 reviewers).
"""
from __future__ import annotations

import ctypes
import json
import time

from factory.backends.base import Completion, Request

# KV cells of one sequence (llamacpp.py's n_ctx; here, each slot's stream). 4096 holds the
# longest prompt we send (a story plus three reviews, ~1,500 tokens) with room.
CONTEXT_TOKENS = 4096

BATCH_TOKENS = 512  # tokens per llama_decode call (llama.cpp's default n_batch)
PENALTY_LAST_N = 64  # Llama's last_n_tokens_size: the window the repeat penalty looks at


def batch_context(backend, slots: int):
    """A second llama_context on the backend's weights for batched decoding (built on first
    use, so slots 1 allocates nothing): `slots` KV streams of CONTEXT_TOKENS each
    (~23 KB a token for SmolLM2-135M in f16: 4 slots ~380 MB, 16 ~1.5 GB)."""
    # One per slot count (a bench switching 4 <-> 16 rebuilt 1.5 GB per switch otherwise).
    contexts = backend.__dict__.setdefault("_batched", {})
    if slots not in contexts:
        import llama_cpp
        from llama_cpp import _internals

        params = llama_cpp.llama_context_default_params()
        params.n_ctx = slots * CONTEXT_TOKENS
        params.n_batch = params.n_ubatch = BATCH_TOKENS
        params.n_seq_max = slots
        params.n_threads = params.n_threads_batch = backend.threads
        params.kv_unified = False  # each sequence its own stream of n_ctx / n_seq_max cells
        params.flash_attn_type = backend._llm.context_params.flash_attn_type  # as the single path's context
        ctx = _internals.LlamaContext(model=backend._llm._model, params=params, verbose=False)
        batch = _internals.LlamaBatch(n_tokens=max(BATCH_TOKENS, slots), embd=0, n_seq_max=1, verbose=False)
        contexts[slots] = (ctx, batch)
    return contexts[slots]


def common_prefix(a: tuple, b: tuple) -> int:
    """Length of the longest common prefix of two token tuples."""
    if a == b:
        return len(a)
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class _Slot:
    """One request decoding in one sequence id of the batched context."""

    def __init__(self, ticket, request: Request, sampler, limit: int, n_past: int, prompt_tokens: int):
        # ticket: what the feed gave with the request, handed back with its completion
        self.ticket, self.request, self.sampler, self.limit = ticket, request, sampler, limit
        self.n_past, self.prompt_tokens = n_past, prompt_tokens
        self.tokens: list[int] = []
        self.started = time.perf_counter()
        self.finish: str | None = None


class BatchedDecoder:
    """llama.cpp's batch API: one llama_context with `slots` sequences (a KV stream of
    CONTEXT_TOKENS each, kv_unified off), one token per live sequence per llama_decode.
    share_prefixes=False prefills every prompt in full (the path before sharing; benches
    and tests compare against it)."""

    def __init__(self, backend, slots: int, share_prefixes: bool = True):
        self.backend, self.slots, self.share = backend, slots, share_prefixes
        self.ctx, self.batch = batch_context(backend, slots)
        # seq id -> (prompt tokens its KV stream holds at positions 0.., logits row after the
        # last of them or None): live sequences and finished ones whose cells are kept until
        # the seq id is reused, so a later request with the same prompt copies them.
        self.held: dict[int, tuple[tuple, object]] = {}

    # -- samplers -------------------------------------------------------------------------

    def _grammar_sampler(self, schema: dict):
        """The schema's grammar sampler; a schema llama-cpp-python's converter rejects (an
        unanchored `pattern`, an unknown type) gets the generic JSON grammar, as
        create_chat_completion does on the single path (llama_chat_format: `except
        Exception: LlamaGrammar.from_string(JSON_GBNF)`). A grammar llama.cpp's own parser
        refuses (init returns NULL) falls back the same way rather than adding NULL to the chain."""
        import llama_cpp
        from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

        vocab = self.backend._llm._model.vocab
        try:
            text = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)._grammar
        except Exception:  # noqa: BLE001 - the single path's fallback, whatever the converter raised
            text = JSON_GBNF
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, text.encode("utf-8"), b"root")
        if not sampler and text != JSON_GBNF:
            sampler = llama_cpp.llama_sampler_init_grammar(vocab, JSON_GBNF.encode("utf-8"), b"root")
        if not sampler:
            raise RuntimeError("llamacpp: llama.cpp refused the generic JSON grammar")
        return sampler

    def _sampler(self, request: Request):
        """The chain create_chat_completion builds (Llama._init_sampler): penalties,
        grammar, top_k, typical, top_p, min_p, temp, dist(seed); min_p and typical at
        Llama's defaults (0.05, 1.0), which the single path uses too."""
        import llama_cpp
        from llama_cpp import _internals

        llm, s = self.backend._llm, request.sampling
        sampler = _internals.LlamaSampler()
        sampler.add_penalties(llm.n_vocab(), PENALTY_LAST_N, s["repeat_penalty"], 0.0, 0.0)
        if request.json_schema:
            llama_cpp.llama_sampler_chain_add(sampler.sampler, self._grammar_sampler(request.json_schema))
        if s["temperature"] <= 0:
            sampler.add_greedy()
        else:
            sampler.add_top_k(s["top_k"])
            sampler.add_typical(1.0, 1)
            sampler.add_top_p(s["top_p"], 1)
            sampler.add_min_p(0.05, 1)
            sampler.add_temp(s["temperature"])
            sampler.add_dist(request.seed & 0xFFFFFFFF)
        return sampler

    def _logits_row(self, index: int):
        """A copy of the logits row of batch position `index` (n_vocab float32, 196 KB for
        SmolLM2), kept so another request with the same prompt samples from it."""
        import llama_cpp
        import numpy as np

        n_vocab = self.backend._llm.n_vocab()
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.ctx.ctx, index), shape=(n_vocab,)).copy()

    @staticmethod
    def _sample_row(sampler, logits) -> int:
        """What llama_sampler_sample does (llama-sampling.cpp), on a saved logits row: the
        candidates {id, logit, 0} in id order, the chain applied, the selected one accepted."""
        import llama_cpp
        import numpy as np

        n = len(logits)
        cells = (llama_cpp.llama_token_data * n)()
        view = np.ctypeslib.as_array(cells)
        view["id"], view["logit"], view["p"] = np.arange(n, dtype=np.int32), logits, 0.0
        array = llama_cpp.llama_token_data_array(
            data=ctypes.cast(cells, llama_cpp.llama_token_data_p), size=n, selected=-1, sorted=False)
        llama_cpp.llama_sampler_apply(sampler.sampler, ctypes.byref(array))
        if not 0 <= array.selected < array.size:
            raise RuntimeError(f"llamacpp: the sampler selected no token ({array.selected} of {array.size})")
        token = array.data[array.selected].id  # samplers may move `data`: read it after apply
        llama_cpp.llama_sampler_accept(sampler.sampler, token)
        return token

    # -- placing a request ---------------------------------------------------------------

    def _source(self, prompt: tuple) -> tuple[int | None, int, object]:
        """(seq id, tokens to copy, logits row or None) of the held prompt this one shares
        most with; (None, 0, None) when none shares a whole chunk or the whole prompt."""
        best: tuple[int | None, int, object] = (None, 0, None)
        for seq, (held, logits) in self.held.items():
            if held == prompt and logits is not None:
                return seq, len(prompt), logits  # nothing to prefill
            # keep one token to compute (its logits), cut at a chunk boundary (module doc)
            shared = min(common_prefix(held, prompt), len(prompt) - 1) // BATCH_TOKENS * BATCH_TOKENS
            if shared > best[1]:
                best = (seq, shared, None)
        return best

    def _place(self, prompt: tuple, free: list[int], live: dict, upcoming: set) -> tuple[int, int, object]:
        """(seq id, prompt tokens already in its KV stream, logits row when all are) for a
        request starting now; the seq id leaves `free`. The source itself when it is free
        (its cells stay: nothing to copy); else a free seq holding nothing, or nothing a
        pending request asks for, gets the source's stream copied in."""
        import llama_cpp

        memory = llama_cpp.llama_get_memory(self.ctx.ctx)
        source, shared, logits = self._source(prompt) if self.share else (None, 0, None)
        if source is not None and source not in live:
            seq = source
        else:
            idle = [q for q in free if q not in self.held] or [q for q in free if self.held[q][0] not in upcoming]
            seq = (idle or free)[-1]
        free.remove(seq)
        if source is not None and source != seq:
            # Across streams llama.cpp copies a whole stream (p0 = p1 = -1; a partial range
            # asserts): the buffer copy runs at the next decode (~94 MB for SmolLM2 at 4,096
            # cells), cheaper than prefilling the shared prefix again: reviews in 0.485x the
            # time (docs/benchmarks.md, "Shared prompt prefixes").
            llama_cpp.llama_memory_seq_cp(memory, source, seq, -1, -1)
        llama_cpp.llama_memory_seq_rm(memory, seq, shared, -1)  # the source's later cells (or all) go
        self.held.pop(seq, None)
        return seq, shared, logits

    def _fill(self, items: list[tuple[int, int, int, bool]]) -> None:
        """(token, position, sequence id, logits wanted) into the batch."""
        b = self.batch.batch
        for i, (token, pos, seq, logits) in enumerate(items):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, 1, logits
            b.seq_id[i][0] = seq
        b.n_tokens = len(items)

    def _start(self, ticket, request: Request, prompt: tuple, seq: int, shared: int, logits) -> _Slot:
        # create_completion's cap: max_tokens no further than the context's end
        limit = min(request.sampling["max_tokens"], CONTEXT_TOKENS - len(prompt))
        slot = _Slot(ticket, request, self._sampler(request), limit, len(prompt), len(prompt))
        stats = self.backend.prefill_stats
        stats["prompt_tokens"] += len(prompt)
        stats["computed"] += len(prompt) - shared
        if logits is None:
            # `shared` is 0 or a chunk boundary: the chunks are those of a full prefill
            for start in range(shared, len(prompt), BATCH_TOKENS):
                chunk = prompt[start:start + BATCH_TOKENS]
                last = start + len(chunk) == len(prompt)
                self._fill([(t, start + j, seq, last and j == len(chunk) - 1) for j, t in enumerate(chunk)])
                self.ctx.decode(self.batch)
            if self.share:
                logits = self._logits_row(len(chunk) - 1)
            token = slot.sampler.sample(self.ctx, len(chunk) - 1)
        else:
            token = self._sample_row(slot.sampler, logits)
        self.held[seq] = (prompt, logits)
        self._take(slot, token)
        return slot

    def _take(self, slot: _Slot, token: int) -> None:
        import llama_cpp

        if llama_cpp.llama_vocab_is_eog(self.backend._llm._model.vocab, token):
            slot.finish = "stop"  # the end token is not part of the text (as create_completion)
            return
        slot.tokens.append(token)
        if len(slot.tokens) >= slot.limit:
            slot.finish = "length"

    def _done(self, slot: _Slot) -> Completion:
        text = self.backend._llm.detokenize(slot.tokens).decode("utf-8", errors="ignore")
        return Completion(key=slot.request.key, text=text, prompt_tokens=slot.prompt_tokens,
                          completion_tokens=len(slot.tokens), seconds=time.perf_counter() - slot.started,
                          finish_reason=slot.finish or "stop")

    def serve(self, feed) -> None:
        """Decode what `feed` hands out until it has nothing left and no sequence is live.
        feed.take() gives the next (ticket, request, prompt tokens) or None (never blocks);
        feed.upcoming() the prompts still waiting; feed.deliver(ticket, completion) gets each
        result as its sequence ends. A feed that is given more requests while this runs (the
        engine's queue, llamacpp_queue.py) puts them in the slots as they free. On an error,
        feed.fail(tickets, error) names the requests it stopped (live or being placed)
        before it propagates."""
        import llama_cpp

        memory = llama_cpp.llama_get_memory(self.ctx.ctx)
        free = list(range(self.slots - 1, -1, -1))
        live: dict[int, _Slot] = {}
        starting = None  # the ticket being placed, not yet live
        llama_cpp.llama_memory_clear(memory, True)
        self.held.clear()
        try:
            while True:
                while free:
                    item = feed.take()
                    if item is None:
                        break
                    starting, request, prompt = item
                    upcoming = feed.upcoming() if self.share else set()
                    seq, shared, logits = self._place(prompt, free, live, upcoming)
                    live[seq] = self._start(starting, request, prompt, seq, shared, logits)
                    starting = None
                for seq in [q for q, slot in live.items() if slot.finish]:
                    slot = live.pop(seq)
                    slot.sampler.close()
                    feed.deliver(slot.ticket, self._done(slot))
                    if not self.share:
                        llama_cpp.llama_memory_seq_rm(memory, seq, -1, -1)  # the slot's KV cells go
                        self.held.pop(seq, None)
                    free.append(seq)  # with sharing its cells stay until the seq id is reused (_place)
                if not live:
                    if feed.empty():
                        return
                    continue  # fill the freed slots before the next step
                if free and not feed.empty():
                    continue
                order = sorted(live)
                self._fill([(live[q].tokens[-1], live[q].n_past, q, True) for q in order])
                self.ctx.decode(self.batch)
                stats = self.backend.decode_stats
                stats["steps"] += 1
                stats["sequences"] += len(order)
                stats["widest"] = max(stats["widest"], len(order))
                for i, q in enumerate(order):
                    live[q].n_past += 1
                    self._take(live[q], live[q].sampler.sample(self.ctx, i))
        except BaseException as exc:
            feed.fail([slot.ticket for slot in live.values()] + ([starting] if starting is not None else []), exc)
            raise
        finally:
            for slot in live.values():
                slot.sampler.close()
            llama_cpp.llama_memory_clear(memory, True)
            self.held.clear()


def prompt_tokens(backend, request: Request) -> tuple:
    """The request's rendered prompt as tokens; a prompt the context cannot hold is refused
    before anything is decoded."""
    prompt = tuple(backend._prompt_tokens(request.messages))
    if len(prompt) >= CONTEXT_TOKENS:
        raise ValueError(f"llamacpp: prompt of request {request.key} is {len(prompt)} tokens; "
                         f"the context holds {CONTEXT_TOKENS}")
    return prompt
