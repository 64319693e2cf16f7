"""Shared prompt prefixes on the batched path (factory/backends/llamacpp_batch.py): requests
of one call with the same prompt prefill it once and copy its KV cache; a prompt that begins
like another shares their whole prefill chunks. Texts stay those of the unshared path.
Real SmolLM2 on 1 thread (a loaded box stalls 2 llama.cpp threads on their barrier), tiny sizes."""
from __future__ import annotations

import dataclasses

import pytest

from factory.backends import Request
from factory.backends.llamacpp import LlamaCppBackend
from factory.backends.llamacpp_batch import BATCH_TOKENS
from factory.keys import request_seed
from factory.pipeline import bind_roles, make_recipe
from factory.spec import load_job

pytestmark = pytest.mark.model

MODEL = "smollm2-135m-instruct-q4_1"
STORIES = ["Tom had a red ball. He lost it in the park. His dog found it, and Tom was happy.",
           "Lily saw a big tree. She wanted to climb it. Her mom said to be careful, and Lily was careful."]


@pytest.fixture(scope="module")
def backend():
    return LlamaCppBackend(MODEL, threads=1)


def reviews(max_tokens: list[int]) -> list[Request]:
    """The demo reviewer's requests, 3 reviewers per story, as Review asks for them."""
    spec = load_job("jobs/tinystories-demo.yaml")
    recipe = make_recipe(spec)
    reviewer = bind_roles(spec, recipe)["reviewer"]
    out = []
    for i, (story, limit) in enumerate(zip(STORIES, max_tokens)):
        variables = recipe.review_variables(recipe.make_seed(i), {"text": story})
        for k in range(spec.reviewers):
            r = reviewer.request(variables, request_seed(spec.seed, i, "reviewer", k), i, k)
            out.append(dataclasses.replace(r, sampling={**r.sampling, "max_tokens": limit}))
    return out


def run(backend, requests, slots, share):
    backend.prefill_stats.update(prompt_tokens=0, computed=0)
    out = backend.generate_batched(requests, slots, share_prefixes=share)
    return out, dict(backend.prefill_stats)


def same(a, b) -> None:
    assert [(c.key, c.text, c.completion_tokens, c.finish_reason, c.prompt_tokens) for c in a] == \
           [(c.key, c.text, c.completion_tokens, c.finish_reason, c.prompt_tokens) for c in b]


def test_reviewers_of_a_sample_prefill_their_prompt_once_with_the_same_texts(backend):
    # 4 slots for 2 x 3 reviewers: story 0's three and story 1's first start together (copies
    # within a round); story 0's stop after 3 tokens, then story 1's last two copy from its
    # first while it is decoding (its generated cells are dropped from the copies)
    requests = reviews([3, 8])
    unshared, plain = run(backend, requests, 4, share=False)
    shared, stats = run(backend, requests, 4, share=True)
    same(shared, unshared)
    prompt_lengths = {r.messages[1]["content"]: c.prompt_tokens for r, c in zip(requests, shared)}
    assert len(prompt_lengths) == 2 and plain["computed"] == plain["prompt_tokens"] == 3 * sum(prompt_lengths.values())
    assert stats["prompt_tokens"] == plain["prompt_tokens"] and stats["computed"] == sum(prompt_lengths.values())


def test_prompts_that_begin_alike_share_whole_prefill_chunks(backend):
    text = " ".join(f"Line {i}: the cat sat on mat number {i}." for i in range(36))  # ~555 tokens: one chunk and a bit
    base = Request(key="a", messages=({"role": "user", "content": text + "\nHow many cats?"},),
                   sampling={"temperature": 0.7, "top_p": 0.95, "top_k": 40, "max_tokens": 4, "repeat_penalty": 1.1},
                   seed=5)
    other = dataclasses.replace(base, key="b", seed=6, messages=({"role": "user", "content": text + "\nName the mats."},))
    requests = [base, other]
    unshared, plain = run(backend, requests, 2, share=False)
    shared, stats = run(backend, requests, 2, share=True)
    same(shared, unshared)
    assert min(c.prompt_tokens for c in shared) > BATCH_TOKENS
    assert stats["computed"] == plain["computed"] - BATCH_TOKENS  # the second prefilled from token 512 on


def test_a_schema_the_grammar_converter_rejects_falls_back_to_generic_json(backend):
    # llama-cpp-python's converter asserts on a pattern without ^...$ (pydantic writes such
    # patterns); create_chat_completion then uses its generic JSON grammar, and so must we
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": "[A-Z]+"}}, "required": ["code"]}
    request = dataclasses.replace(reviews([12])[0], json_schema=schema, key="pattern")
    single = backend.generate([request])[0]
    batched = backend.generate_batched([request, dataclasses.replace(request, key="again", seed=99)], 2)
    for completion in (single, *batched):
        assert completion.completion_tokens > 0 and completion.text.lstrip().startswith("{"), completion
