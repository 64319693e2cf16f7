"""execution.slots_per_engine > 1: the llamacpp backend decodes several requests together
with llama.cpp's batch API (LlamaCppBackend.generate_batched). Real SmolLM2, small sizes
(4 requests, 24 tokens; the JSON ones get room to close their object)."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import duckdb
import pytest
import yaml

from factory.backends import Request
from factory.backends.llamacpp import LlamaCppBackend
from factory.executors.local import LocalExecutor
from factory.keys import request_seed
from factory.pipeline import bind_roles, make_recipe
from factory.recipes.tinystories import make_seed
from factory.spec import load_job
from roles.base import Drop

pytestmark = pytest.mark.model

MODEL = "smollm2-135m-instruct-q4_1"
DEMO = "jobs/tinystories-demo.yaml"


@pytest.fixture(scope="module")
def roles():
    spec = load_job(DEMO)
    return spec, bind_roles(spec, make_recipe(spec))


@pytest.fixture(scope="module")
def backend():
    return LlamaCppBackend(MODEL, threads=2)


def generator_requests(roles, n: int, max_tokens: int) -> list[Request]:
    spec, bound = roles
    gen = bound["generator"]
    out = [gen.request(make_seed(spec.seed, i), request_seed(spec.seed, i, "generator")) for i in range(n)]
    return [dataclasses.replace(r, sampling={**r.sampling, "max_tokens": max_tokens}) for r in out]


def review_requests(roles, n: int) -> list[Request]:
    """The demo reviewer's requests (its JSON schema and grammar) on short stories."""
    spec, bound = roles
    reviewer = bound["reviewer"]
    story = "Tom had a red ball. He lost it in the park. His dog found it, and Tom was happy."
    recipe, out = make_recipe(spec), []
    for i in range(n):
        seed = make_seed(spec.seed, i)
        out.append(reviewer.request(recipe.review_variables(seed, {"text": story}), request_seed(spec.seed, i, "reviewer")))
    return out


def test_batched_completions_match_the_single_path_in_shape(roles, backend):
    requests = generator_requests(roles, 4, max_tokens=24)
    single = backend.generate(requests)
    batched = backend.generate_batched(requests, 4)
    assert [c.key for c in batched] == [r.key for r in requests]
    for one, many in zip(single, batched):
        # the prompt is rendered with the model's chat template and tokenized as create_chat_completion does
        assert many.prompt_tokens == one.prompt_tokens
        assert 0 < many.completion_tokens <= 24 and many.text
        assert many.finish_reason == ("length" if many.completion_tokens == 24 else "stop")


def test_a_sequence_that_ends_frees_its_slot_and_says_stop(roles, backend):
    # 2 slots for 4 requests: the last two start only when the first two finish
    requests = generator_requests(roles, 4, max_tokens=24)
    # a one-field schema: the grammar closes the object in a few tokens, then only an end token fits
    requests[1] = dataclasses.replace(requests[1], json_schema={
        "type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]})
    out = backend.generate_batched(requests, 2)
    assert all(c is not None and c.text for c in out)
    assert out[1].finish_reason == "stop" and out[1].completion_tokens < 24, out[1]
    assert json.loads(out[1].text) in ({"ok": True}, {"ok": False})
    assert {c.finish_reason for c in out} <= {"stop", "length"}


def test_json_schema_requests_parse_with_the_reviewers_parse(roles, backend):
    spec, bound = roles
    reviewer = bound["reviewer"]
    requests = review_requests(roles, 2) + generator_requests(roles, 2, max_tokens=24)
    out = backend.generate_batched(requests, 4)
    for completion in out[:2]:
        assert completion.finish_reason == "stop", completion  # the grammar closed the object
        parsed = reviewer.parse({}, completion)
        assert not isinstance(parsed, Drop), (parsed, completion.text)
        assert json.loads(completion.text, strict=False)  # raw newlines inside strings, as parse_json_model allows


def test_local_executor_sends_up_to_slots_per_call_and_asks_admit_before_each(roles, monkeypatch):
    spec, _ = roles
    requests = generator_requests(roles, 4, max_tokens=8)
    ex = LocalExecutor(threads=2, slots=3)
    calls, asked = [], []
    original = LlamaCppBackend.generate_batched

    def spy(self, reqs, slots):
        calls.append((len(reqs), len(asked)))
        return original(self, reqs, slots)

    monkeypatch.setattr(LlamaCppBackend, "generate_batched", spy)
    ref = spec.roles["generator"].model_ref()
    out = ex.generate(ref, requests, admit=lambda r: asked.append(r.key) or True)
    ex.close()
    assert [c.key for c in out] == [r.key for r in requests]
    assert calls == [(3, 3), (1, 4)]  # 3 admitted then sent together, then the fourth


def test_factory_run_with_four_slots_completes_with_reviews(tmp_path):
    job = yaml.safe_load(open(DEMO))
    job.update(num_samples=4, reviewers=2, db=str(tmp_path / "b.duckdb"))
    job["roles"]["generator"]["sampling"]["max_tokens"] = 64  # >= 30 words, the recipe's minimum
    job["roles"]["reviewer"]["sampling"]["max_tokens"] = 80
    job["roles"]["adjudicator"]["sampling"]["max_tokens"] = 60
    # gates off (tests/signals covers them): every story reaches the reviewers
    job["decision"].update(require_seed_words=False, truncated="keep", max_out_of_vocabulary=None, min_seed_words=None,
                           text_gates="signal", min_likelihood=None, score="reviewers")  # a likelihood score needs min_likelihood
    job["execution"] = {"executor": "local", "threads_per_engine": 2, "slots_per_engine": 4, "batch_size": 4}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    proc = subprocess.run([sys.executable, "-m", "factory.cli", "run", str(path)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    con = duckdb.connect(str(tmp_path / "b.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM done_seeds").fetchone()[0] == 4
        assert con.execute("SELECT count(*) FROM reviews").fetchone()[0] > 0
    finally:
        con.close()
