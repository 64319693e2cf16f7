"""The openai backend against a misbehaving OpenAI-compatible server: a local http.server on
127.0.0.1 answering scripted responses in order (non-JSON, HTML, `{}`, empty `choices`, a key
echoed in a 401), then a good chat completion. No model runs; the backoff is patched to 0 s."""
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from factory.backends import openai_compat
from factory.backends.base import Request
from factory.backends.openai_compat import BackendUnavailable, Malformed, OpenAIBackend, backoff_s, parse_answer
from factory.backends.redact import redact
from factory.spec import EndpointSpec, SamplingParams

KEY = "sk-test/0123456789abcdefSECRET"  # the '/' comes back as '\/' from some JSON encoders
KEY_ENV = "FACTORY_TEST_MISBEHAVING_KEY"
GOOD = {"id": "c1", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Once upon a time."},
                     "finish_reason": "length"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}}


def reply(body, status=200, ctype="application/json", headers=None):
    text = body if isinstance(body, str) else json.dumps(body)
    return status, ctype, text, headers or {}


NOT_JSON = reply("upstream busy, try later", ctype="text/plain")
HTML = reply("<html>\n<head><title>502 Bad Gateway</title></head>\n<body>nginx</body>\n</html>", ctype="text/html")
EMPTY_OBJECT = reply({})
NO_CHOICES = reply({"choices": []})


class ScriptedServer:
    """Answers the scripted replies in order, then repeats the last one; counts requests
    and keeps the Authorization header each carried."""

    def __init__(self, script):
        self.script, self.requests, self.auth = list(script), 0, []
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length", 0)))
                with lock:
                    status, ctype, text, headers = outer.script[min(outer.requests, len(outer.script) - 1)]
                    outer.requests += 1
                    outer.auth.append(self.headers.get("authorization"))
                data = text.encode()
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # keep pytest's output clean
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
    monkeypatch.setattr(openai_compat, "BACKOFF_FIRST_S", 0.0)  # malformed retries: no wait
    monkeypatch.setenv(KEY_ENV, KEY)


def backend(server, max_retries=5):
    ep = EndpointSpec(base_url=server.url, api_key_env=KEY_ENV, max_retries=max_retries, timeout_s=10,
                      max_concurrency=1)
    return OpenAIBackend("m", ep)


def request(key="r1"):
    return Request(key=key, messages=({"role": "user", "content": "Tell a story."},),
                   sampling=SamplingParams().model_dump(), seed=1)


def fails(server, **kw) -> str:
    with pytest.raises(BackendUnavailable) as info:
        backend(server, **kw).generate([request()])
    return str(info.value)


def test_malformed_answers_are_retried_until_a_good_one():
    with ScriptedServer([NOT_JSON, HTML, EMPTY_OBJECT, NO_CHOICES, reply(GOOD)]) as server:
        (done,) = backend(server, max_retries=5).generate([request()])
    assert (done.text, done.prompt_tokens, done.completion_tokens, done.finish_reason) == \
        ("Once upon a time.", 7, 5, "length")
    assert server.requests == 5
    assert server.auth == [f"Bearer {KEY}"] * 5  # the key still goes to the server, only never out to us


def test_a_good_first_answer_is_asked_once():
    with ScriptedServer([reply(GOOD), NOT_JSON]) as server:
        (done,) = backend(server).generate([request()])
    assert done.text == "Once upon a time." and server.requests == 1


def test_always_malformed_is_one_line_naming_url_and_body_after_max_retries_plus_one():
    with ScriptedServer([EMPTY_OBJECT]) as server:
        message = fails(server, max_retries=3)
    assert server.requests == 4
    assert message == f"server at {server.url} sent a malformed answer 4 times: no 'choices' in the body: '{{}}'"


def test_an_html_page_is_quoted_on_one_line_and_cut_at_200_characters():
    page = "<html>\n<body>\n" + "x" * 500 + "\n</body></html>"
    with ScriptedServer([reply(page, ctype="text/html")]) as server:
        message = fails(server, max_retries=1)
    assert server.requests == 2 and "\n" not in message
    assert message.startswith(f"server at {server.url} sent a malformed answer 2 times: the body is not JSON: "
                              "'<html> <body> xxx")
    assert message.endswith("x" * 20 + "'") and len(message) < len(server.url) + 300


def test_max_retries_zero_asks_once():
    with ScriptedServer([NO_CHOICES]) as server:
        message = fails(server, max_retries=0)
    assert server.requests == 1 and "malformed answer 1 time: 'choices' is empty" in message


def test_missing_usage_is_retried_not_counted_as_zero_tokens():
    no_usage = {k: v for k, v in GOOD.items() if k != "usage"}
    with ScriptedServer([reply(no_usage), reply(GOOD)]) as server:
        (done,) = backend(server).generate([request()])
    assert server.requests == 2 and done.prompt_tokens == 7


def test_a_401_echoing_the_key_does_not_print_it():
    body = {"error": {"message": f"Incorrect API key provided: {KEY}", "type": "invalid_request_error"}}
    with ScriptedServer([reply(body, status=401)]) as server:
        message = fails(server)
    assert server.requests == 1  # a 401 is not retried
    assert KEY not in message and KEY.replace("/", "\\/") not in message and "SECRET" not in message
    assert message.startswith(f"{server.url} answered 401: ") and "Incorrect API key provided: ***" in message


def test_a_5xx_echoing_the_key_does_not_print_it():
    # retry-after-ms tells the openai client to wait 1 ms between its own 5xx retries
    echo = reply(f"internal error for key {KEY}", status=500, ctype="text/plain", headers={"retry-after-ms": "1"})
    with ScriptedServer([echo]) as server:
        message = fails(server, max_retries=1)
    assert server.requests == 2
    assert KEY not in message and message.startswith(f"{server.url} answered 500 after 1 retries: ")
    assert "internal error for key ***" in message


def test_a_malformed_body_echoing_the_key_does_not_print_it_even_where_cut():
    # the key straddles the 200-character cut: redacting after cutting would leave its first half
    body = "y" * 190 + f" key={KEY} " + "z" * 50
    with ScriptedServer([reply(body, ctype="text/plain")]) as server:
        message = fails(server, max_retries=0)
    assert KEY[:8] not in message and "key=***" in message


def test_a_json_escaped_key_is_redacted():
    assert redact('{"detail": "bad key sk-test\\/0123456789abcdefSECRET"}', KEY) == '{"detail": "bad key ***"}'
    assert redact(f"a {KEY} b {KEY}", KEY) == "a *** b ***"
    assert redact("nothing here", None) == "nothing here"


@pytest.mark.parametrize("body, reason", [
    ("", "the body is empty"),
    ("<html></html>", "the body is not JSON"),
    ("[1, 2]", "the body is a JSON list, not an object"),
    ("{}", "no 'choices' in the body"),
    ('{"choices": []}', "'choices' is empty"),
    ('{"choices": {}}', "'choices' is not a list"),
    ('{"choices": [{"text": "hi"}]}', "choices[0] has no 'message'"),
    ('{"choices": [{"message": {"role": "assistant", "content": null}}]}', "choices[0].message has no 'content'"),
    ('{"choices": [{"message": {"content": 3}}]}', "choices[0].message.content is not a string"),
    ('{"choices": [{"message": {"content": "hi"}}]}', "no 'usage' in the body"),
    ('{"choices": [{"message": {"content": "hi"}}], "usage": {"prompt_tokens": 3}}',
     "usage.completion_tokens is None, not a token count"),
])
def test_what_is_malformed_is_named(body, reason):
    with pytest.raises(Malformed) as info:
        parse_answer(body)
    assert str(info.value) == reason


def test_a_good_body_parses():
    assert parse_answer(json.dumps(GOOD)) == ("Once upon a time.", 7, 5, "length")
    empty_text = {**GOOD, "choices": [{"message": {"content": ""}}]}  # empty text is an answer, not garbage
    assert parse_answer(json.dumps(empty_text)) == ("", 7, 5, "stop")


def test_backoff_doubles_to_a_cap_with_jitter_drawn_from_the_request_key(monkeypatch):
    monkeypatch.setattr(openai_compat, "BACKOFF_FIRST_S", 0.5)
    waits = [backoff_s(a, "k") for a in range(6)]
    caps = [0.5, 1, 2, 4, 8, 8]  # BACKOFF_MAX_S = 8
    assert all(0.75 * cap <= w <= cap for w, cap in zip(waits, caps))
    assert waits == [backoff_s(a, "k") for a in range(6)]  # same key, same waits: reruns are reproducible
    assert backoff_s(0, "k") != backoff_s(0, "other")  # different requests spread out


def test_factory_run_against_a_garbage_server_ends_with_one_line(tmp_path):
    ep = {"base_url": "", "api_key_env": KEY_ENV, "max_retries": 0, "timeout_s": 10, "max_concurrency": 1}
    with ScriptedServer([HTML]) as server:
        ep["base_url"] = server.url
        job = {"name": "garbage", "recipe": "tinystories", "num_samples": 1, "seed": 2, "reviewers": 1,
               "roles": {r: {"backend": "openai", "model": "m", "endpoint": ep, "template": f"tinystories/{r}@1"}
                         for r in ("generator", "reviewer", "adjudicator")},
               "execution": {"executor": "local", "batch_size": 1}}
        path = tmp_path / "garbage.yaml"
        path.write_text(yaml.safe_dump(job))
        done = subprocess.run([sys.executable, "-m", "factory.cli", "run", str(path), "--db", str(tmp_path / "g.duckdb"),
                               "--quiet"], capture_output=True, text=True, timeout=300,
                              env={**os.environ, KEY_ENV: KEY, "RAY_AUTH_MODE": "disabled"})
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and KEY not in done.stderr + done.stdout
    assert done.stderr.strip().splitlines()[-1].startswith(
        f"error: server at {server.url} sent a malformed answer 1 time: the body is not JSON: '<html> <head>")
