"""The likelihood signal through an OpenAI-compatible server's prompt logprobs (legacy
completions with echo): against a local http.server on 127.0.0.1 that answers as vLLM's
does, with logprobs that are a function of the prompt's words (hand values below); a server
without prompt logprobs; the likelihood cache; a fake-backend job whose decision.likelihood_model
is that server, through the min_likelihood gate. No model runs."""
from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from support import fake_job, query

import factory
from factory import cli
from factory.backends import openai_compat
from factory.backends.base import ScoreUnsupported
from factory.backends.openai_compat import NoPromptLogprobs, OpenAIBackend, parse_prompt_logprobs
from factory.spec import EndpointSpec, JobError, parse_job
from factory.steps.likelihood import scores_in

GENERATED_LOGPROB = -0.5  # the one token max_tokens=1 makes: never part of the mean


def word_logprob(word: str) -> float:
    return -(len(word) % 4) - 0.25


def served_logprobs(prompt: str) -> list:
    """What the fake server answers for a prompt: one token per space-separated word, the first
    without a logprob (nothing precedes it), then the generated token."""
    words = prompt.split(" ")
    return [None] + [word_logprob(w) for w in words[1:]] + [GENERATED_LOGPROB]


def expected(text: str) -> tuple[float, int]:
    words = text.split(" ")[1:]
    return (sum(map(word_logprob, words)) / len(words), len(words)) if words else (0.0, 0)


def completion(prompt: str, mode: str) -> tuple[int, dict]:
    words = prompt.split(" ")
    logprobs = served_logprobs(prompt)
    usage = {"prompt_tokens": len(words), "completion_tokens": 1, "total_tokens": len(words) + 1}
    if mode == "refuse":  # how a server without echo support answers (a 400 naming the field)
        return 400, {"error": {"message": "echo is not supported", "type": "invalid_request_error"}}
    if mode == "no_logprobs":
        body = None
    elif mode == "shifted":  # llama-cpp-python's server: no entry for the generated token
        body = {"tokens": words, "token_logprobs": logprobs[:-1], "text_offset": [0] * len(words),
                "top_logprobs": [None] * len(words)}
    elif mode == "generated_only":  # llama.cpp's C++ server: the generated token's logprob alone
        body = {"tokens": ["x"], "token_logprobs": [GENERATED_LOGPROB], "text_offset": [len(prompt)],
                "top_logprobs": [{"x": GENERATED_LOGPROB}]}
    else:
        body = {"tokens": [*words, "x"], "token_logprobs": logprobs, "text_offset": [0] * len(logprobs),
                "top_logprobs": [None] + [{w: word_logprob(w)} for w in words[1:]] + [{"x": GENERATED_LOGPROB}]}
    return 200, {"id": "c", "object": "text_completion", "created": 0, "model": "m",
                 "choices": [{"index": 0, "text": prompt + " x", "logprobs": body, "finish_reason": "length"}],
                 "usage": usage}


class LogprobServer:
    """POST /v1/completions answered from the prompt (mode: ok, refuse, no_logprobs,
    generated_only, shifted); records every request body. hold=n: each request waits until n are in
    flight (or every expected request has arrived), so the bound on concurrency is seen."""

    def __init__(self, mode: str = "ok", hold: int = 0, expect: int = 0):
        self.mode, self.bodies, self.paths = mode, [], []
        self.in_flight = self.max_in_flight = self.arrived = 0
        cond = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                request = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                with cond:
                    outer.bodies.append(request)
                    outer.paths.append(self.path)
                    outer.arrived += 1
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                    cond.notify_all()
                    if hold:  # a guard, not a timing: released as soon as the condition holds
                        cond.wait_for(lambda: outer.in_flight >= hold or outer.arrived >= expect, timeout=30)
                status, body = completion(request["prompt"], outer.mode)
                data = json.dumps(body).encode()
                with cond:
                    outer.in_flight -= 1
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(openai_compat, "BACKOFF_FIRST_S", 0.0)


def backend(server, concurrency: int = 2) -> OpenAIBackend:
    return OpenAIBackend("ref-model", EndpointSpec(base_url=server.url, max_retries=0, timeout_s=30,
                                                   max_concurrency=concurrency))


def body(token_logprobs, completion_tokens=1, prompt_tokens=None) -> str:
    prompt_tokens = len(token_logprobs) - completion_tokens if prompt_tokens is None else prompt_tokens
    return json.dumps({"choices": [{"text": "", "logprobs": {"token_logprobs": token_logprobs}}],
                       "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}})


def test_the_mean_is_over_the_prompt_tokens_but_the_first():
    # -1 - 2 - 0.5 over three tokens; the first prompt token (null) and the generated -3 left out
    assert parse_prompt_logprobs(body([None, -1.0, -2.0, -0.5, -3.0])) == pytest.approx((-3.5 / 3, 3))
    assert parse_prompt_logprobs(body([None, -1.0, -2.0, -0.5], completion_tokens=0)) == \
        pytest.approx((-3.5 / 3, 3))
    assert parse_prompt_logprobs(body([None, -0.7])) == (0.0, 0)  # a one-token text: nothing to score
    assert expected("Once upon a time") == pytest.approx((-1.75 / 3, 3))  # -0.25 - 1.25 - 0.25


@pytest.mark.parametrize("answer, said", [
    (json.dumps({"choices": [{"text": "x", "logprobs": None}], "usage": {"completion_tokens": 1}}),
     "no choices[0].logprobs.token_logprobs"),
    (body([-0.5], prompt_tokens=4), "all for generated tokens: none for the prompt"),
    # llama-cpp-python's server: one entry per prompt token only, each shifted by a position
    (body([None, -11.1, -11.7, -14.9], prompt_tokens=4), "token_logprobs has 4 entries for 4 prompt and 1 "
     "generated tokens: not one per token"),
])
def test_an_answer_without_prompt_logprobs_says_so(answer, said):
    with pytest.raises(NoPromptLogprobs, match=re.escape(said)):
        parse_prompt_logprobs(answer)


def test_score_against_the_server_matches_the_hand_values():
    texts = ["Once upon a time", "The cat sat on the warm mat.", "Hi"]
    with LogprobServer() as server:
        scores = backend(server).score(texts)
    assert scores[0] == pytest.approx((-1.75 / 3, 3))
    assert scores == [pytest.approx(expected(t)) for t in texts]
    assert scores[2] == (0.0, 0)
    assert set(server.paths) == {"/v1/completions"}
    for sent in server.bodies:
        assert (sent["model"], sent["echo"], sent["logprobs"], sent["max_tokens"], sent["temperature"]) == \
            ("ref-model", True, 1, 1, 0.0)
    assert sorted(b["prompt"] for b in server.bodies) == sorted(texts)


def test_score_keeps_to_the_endpoints_concurrency():
    texts = [f"story number {i} ends" for i in range(6)]
    with LogprobServer(hold=2, expect=len(texts)) as server:
        scores = backend(server, concurrency=2).score(texts)
    assert scores == [pytest.approx(expected(t)) for t in texts]
    assert server.max_in_flight == 2


@pytest.mark.parametrize("mode, said", [
    ("refuse", "answered 400: '{\"error\": {\"message\": \"echo is not supported\""),
    ("no_logprobs", "returned no prompt logprobs: no choices[0].logprobs.token_logprobs in the answer"),
    ("generated_only", "returned no prompt logprobs: token_logprobs has 1 entry, all for generated tokens"),
    ("shifted", "returned no prompt logprobs: token_logprobs has 4 entries for 4 prompt and 1 generated tokens"),
])
def test_a_server_without_prompt_logprobs_is_one_line_naming_the_endpoint(mode, said):
    with LogprobServer(mode) as server:
        with pytest.raises(ScoreUnsupported) as info:
            backend(server).score(["Once upon a time"])
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"the likelihood signal needs prompt logprobs from {server.url}/completions "
                              "(model ref-model, echo: true, logprobs: 1, max_tokens: 1); it ")
    assert said in message
    assert len(server.bodies) == 1  # a refusal or an answer without them is not asked again


def likelihood_job(url: str, model: str = "ref-model", **decision) -> dict:
    ref = {"backend": "openai", "model": model, "endpoint": {"base_url": url, "max_concurrency": 2,
                                                             "max_retries": 0, "timeout_s": 30}}
    return fake_job(decision={"accept_mean": 6, "reject_mean": 4, "likelihood_model": ref, **decision})


def run(tmp_path, job: dict, limit: int | None = None):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return factory.run(str(path), db=tmp_path / "f.duckdb", limit=limit)


def test_a_job_gates_on_the_servers_likelihood_and_caches_it(tmp_path):
    with LogprobServer() as server:
        # the threshold sits inside the fake stories' range, so both verdicts occur
        run(tmp_path, likelihood_job(server.url, min_likelihood=-1.1))
        asked = len(server.bodies)
        db = tmp_path / "f.duckdb"
        rows = query(db, """SELECT s.sample_id, s.text, g.value, g.prompt_tokens, g.model FROM signals g
                            JOIN samples s USING (sample_id) WHERE g.signal = 'likelihood'""")
        in_play = query(db, "SELECT count(*) FROM samples WHERE duplicate_of IS NULL")[0][0]
        assert rows and len(rows) == in_play == asked  # one request per sample in play
        for _, text, value, tokens, model in rows:
            assert (value, tokens) == pytest.approx(expected(text))
            assert json.loads(model)["model"] == "ref-model" and json.loads(model)["backend"] == "openai"
        gated = {r[0] for r in query(db, "SELECT sample_id FROM verdicts WHERE stage = 'likelihood'")}
        below = {sid for sid, _, value, _, _ in rows if value < -1.1}
        assert below and gated == below and len(below) < len(rows)
        reasons = [r[0] for r in query(db, "SELECT reason FROM verdicts WHERE stage = 'likelihood'")]
        assert all("< -1.1 under ref-model" in r for r in reasons)

        # Another job with the same stories and the same reference model: every score from the cache.
        run(tmp_path, likelihood_job(server.url, min_likelihood=-1.1) | {"name": "same-texts-other-job"})
        assert len(server.bodies) == asked
        # Another model behind the same endpoint: its own scores, asked again.
        run(tmp_path, likelihood_job(server.url, model="other-model", min_likelihood=-1.1)
            | {"name": "other-reference"})
        assert len(server.bodies) == 2 * asked
        assert {b["model"] for b in server.bodies[asked:]} == {"other-model"}


def test_a_server_without_prompt_logprobs_stops_the_run_with_one_line(tmp_path, capsys):
    with LogprobServer("refuse") as server:
        job = likelihood_job(server.url, min_likelihood=-2.0)
        (tmp_path / "api").mkdir()
        with pytest.raises(ScoreUnsupported, match=f"prompt logprobs from {server.url}/completions"):
            run(tmp_path / "api", job, limit=4)
        path = tmp_path / "job.yaml"
        path.write_text(yaml.safe_dump(job))
        db = tmp_path / "cli.duckdb"
        assert cli.main(["run", str(path), "--db", str(db), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: the likelihood signal needs prompt logprobs from ") and "answered 400" in err[-1]
    assert query(db, "SELECT count(*) FROM samples")[0][0] == 0  # the first batch was not committed


def test_an_openai_reference_model_is_accepted_at_load_and_scores_only_when_asked():
    url = "http://127.0.0.1:9/v1"
    assert scores_in(parse_job(likelihood_job(url)))  # asked through likelihood_model
    generator = {"backend": "openai", "model": "g", "endpoint": {"base_url": url},
                 "template": "tinystories/generator@1"}
    job = fake_job()
    job["roles"]["generator"] = generator
    assert not scores_in(parse_job(job))  # not asked: a server without prompt logprobs never stops it
    assert scores_in(parse_job(job | {"decision": {"min_likelihood": -2.0}}))
    no_endpoint = likelihood_job(url)
    del no_endpoint["decision"]["likelihood_model"]["endpoint"]
    with pytest.raises(JobError, match="decision.likelihood_model: backend openai needs endpoint.base_url"):
        parse_job(no_endpoint)


@pytest.mark.model
def test_llama_cpp_pythons_server_is_refused_not_misread(tmp_path):
    """llama-cpp-python's server answers echo with one entry per prompt token and none for the
    generated one, each shifted a position (abetlen/llama-cpp-python#1983): read as prompt
    logprobs it ranks a story below its shuffled words, so the count check refuses it."""
    import socket
    import subprocess
    import sys
    import urllib.request

    from factory.backends.llamacpp import model_path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model",
                             str(model_path("smollm2-135m-instruct-q4_1")), "--host", "127.0.0.1", "--port", str(port),
                             "--n_threads", "1", "--n_ctx", "1024"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):  # up to ~60 s for the server to answer (it loads the model first)
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail("llama_cpp.server exited")
                threading.Event().wait(0.1)
        ep = EndpointSpec(base_url=f"http://127.0.0.1:{port}/v1", max_retries=0, timeout_s=60)
        with pytest.raises(ScoreUnsupported, match=r"token_logprobs has (\d+) entries for \1 prompt and 1 generated"):
            OpenAIBackend("smollm2", ep).score(["Once upon a time there was a dog."])
    finally:
        proc.kill()
        proc.wait()
