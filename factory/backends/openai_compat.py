"""Any OpenAI-compatible server: vllm serve, SGLang, llama.cpp's server, TGI, hosted APIs.

The API key is read from the environment variable the job names, at call time, and is
never written to the database or the logs; every message this backend raises has it
replaced by *** (servers echo it in 401 and error bodies). The openai client does the
timeouts and the retries on 429, 5xx and connection errors (exponential backoff with
jitter); a 200 whose body is not a usable chat completion (not JSON, an HTML page, no
`choices`, no text, no `usage`) is retried here on the same schedule, because the client
never looks at a 200's body. A thread pool bounds the requests in flight.
"""
from __future__ import annotations

import json
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor

from factory.backends.base import Completion, MissingPackage, ModelIdentity, Request
from factory.backends.redact import redact

# The openai client's own backoff for 429/5xx (openai/_constants.py: 0.5 s doubling up to
# 8 s, then 0-25 % off as jitter), repeated for malformed answers. With the default 5 retries
# a server that always answers garbage costs 0.5+1+2+4+8 = 15.5 s at most before the job stops.
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 8.0
EXCERPT_CHARS = 200  # of the server's body, quoted in the error line


class BackendUnavailable(ConnectionError):
    """The server could not be reached or kept failing; the message names the URL."""


class MissingCredential(RuntimeError):
    """The job names an API-key variable that is not set; the message names the variable."""


class Malformed(ValueError):
    """A 200 answer that is not a usable chat completion; the message says what is missing."""


def identity_for(model: str, endpoint) -> ModelIdentity:
    if endpoint is None or not endpoint.base_url:
        raise ValueError("the openai backend needs endpoint.base_url (e.g. http://127.0.0.1:8000/v1)")
    _api_key(endpoint)  # a missing key fails here, before the database is touched
    return ModelIdentity(backend="openai", model=model, extra={"base_url": endpoint.base_url.rstrip("/")})


def _api_key(endpoint) -> str:
    if not endpoint.api_key_env:
        return "not-needed"  # local servers ignore the key, the client insists on one
    key = os.environ.get(endpoint.api_key_env)
    if not key:
        raise MissingCredential(f"the openai backend needs an API key in the environment variable "
                                f"{endpoint.api_key_env}, which is not set")
    return key


def backoff_s(attempt: int, key: str) -> float:
    """Seconds to wait before retry `attempt` (0-based). The jitter is drawn from the request
    key, so concurrent requests spread out and a rerun waits exactly as long."""
    full = min(BACKOFF_FIRST_S * 2.0 ** attempt, BACKOFF_MAX_S)
    return full * (1 - 0.25 * random.Random(f"{key}/{attempt}").random())


def parse_answer(body: str) -> tuple[str, int, int, str]:
    """(text, prompt_tokens, completion_tokens, finish_reason) from a chat completion body,
    or Malformed naming the first thing missing. A missing `usage` is malformed too, not
    "0 tokens": token budgets are enforced from these counts, and a server that stopped
    reporting them would otherwise run past every cap unnoticed."""
    if not body.strip():
        raise Malformed("the body is empty")
    try:
        data = json.loads(body)
    except ValueError:
        raise Malformed("the body is not JSON") from None
    if not isinstance(data, dict):
        raise Malformed(f"the body is a JSON {type(data).__name__}, not an object")
    if "choices" not in data:
        raise Malformed("no 'choices' in the body")
    choices = data["choices"]
    if not isinstance(choices, list) or not choices:
        raise Malformed("'choices' is empty" if choices == [] else "'choices' is not a list")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise Malformed("choices[0] has no 'message'")
    if not isinstance(message.get("content"), str):
        raise Malformed("choices[0].message has no 'content'" if message.get("content") is None
                        else "choices[0].message.content is not a string")
    usage = data.get("usage")
    if not isinstance(usage, dict):
        raise Malformed("no 'usage' in the body")
    counts = []
    for field in ("prompt_tokens", "completion_tokens"):
        n = usage.get(field)
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise Malformed(f"usage.{field} is {n!r}, not a token count")
        counts.append(n)
    return message["content"], counts[0], counts[1], choice.get("finish_reason") or "stop"


def one_line(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The first `limit` characters with whitespace runs folded to one space, quoted (repr:
    control characters come out escaped, so the error stays one line)."""
    return repr(" ".join(text.split())[:limit])


class OpenAIBackend:
    def __init__(self, model: str, endpoint, threads: int = 1):
        try:
            import openai
        except ImportError:
            raise MissingPackage("the openai backend needs the openai package: pip install openai") from None
        self.identity = identity_for(model, endpoint)
        self.model, self.endpoint = model, endpoint
        self.url = endpoint.base_url
        self._openai = openai
        key = _api_key(endpoint)
        self._secret = key if endpoint.api_key_env else None  # the placeholder is no secret
        self._client = openai.OpenAI(base_url=endpoint.base_url, api_key=key,
                                     timeout=endpoint.timeout_s, max_retries=endpoint.max_retries)

    def _unavailable(self, message: str) -> BackendUnavailable:
        """Every message raised here goes through this: no API key, one line."""
        return BackendUnavailable(" ".join(redact(message, self._secret).split()))

    def _response_format(self, schema: dict | None):
        if schema is None:
            return None
        if self.endpoint.schema_format == "json_object":  # llama.cpp's server spells it this way
            return {"type": "json_object", "schema": schema}
        return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": True}}

    def _ask(self, r: Request) -> str:
        """One request through the client (which retries 429/5xx/connection errors itself);
        the raw body of the 200, unparsed: the client turns a non-JSON body into a bare str and
        a JSON body without `choices` into an object missing attributes, neither of which can
        be told from a good answer without looking at the body."""
        s = r.sampling
        extra = {"top_k": s["top_k"], "repeat_penalty": s["repeat_penalty"]} if self.endpoint.send_extra_sampling else {}
        fmt = self._response_format(r.json_schema)
        try:
            raw = self._client.chat.completions.with_raw_response.create(
                model=self.model, messages=list(r.messages), temperature=s["temperature"], top_p=s["top_p"],
                max_tokens=s["max_tokens"], seed=r.seed, extra_body=extra or None,
                **({"response_format": fmt} if fmt else {}))
        except (self._openai.APIConnectionError, self._openai.APITimeoutError) as err:
            raise self._unavailable(f"cannot reach {self.url}: {err}") from None
        except self._openai.APIStatusError as err:
            # the client retries 408, 409, 429 and 5xx only; a 401 or 404 is said as it came
            retried = err.status_code in (408, 409, 429) or err.status_code >= 500
            after = f" after {self.endpoint.max_retries} retries" if retried else ""
            # the body as sent (str(err) drops a non-JSON one); redacted whole before it is
            # cut: a cut could leave half a key
            sent = err.response.text or str(err)
            raise self._unavailable(f"{self.url} answered {err.status_code}{after}: "
                                    f"{one_line(redact(sent, self._secret))}") from None
        return raw.text

    def _one(self, r: Request) -> Completion:
        started = time.perf_counter()
        tries = self.endpoint.max_retries + 1
        for attempt in range(tries):
            body = self._ask(r)
            try:
                text, prompt_tokens, completion_tokens, finish = parse_answer(body)
            except Malformed as bad:
                if attempt + 1 < tries:
                    time.sleep(backoff_s(attempt, r.key))
                    continue
                raise self._unavailable(
                    f"server at {self.url} sent a malformed answer {tries} time{'s' if tries > 1 else ''}: "
                    f"{bad}: {one_line(redact(body, self._secret))}") from None
            return Completion(key=r.key, text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                              seconds=time.perf_counter() - started, finish_reason=finish)

    def generate(self, requests: list[Request]) -> list[Completion]:
        with ThreadPoolExecutor(max(1, self.endpoint.max_concurrency)) as pool:
            return list(pool.map(self._one, requests))
