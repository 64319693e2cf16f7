"""Any OpenAI-compatible server: vllm serve, SGLang, llama.cpp's server, TGI, hosted APIs.

The API key is read from the environment variable the job names, at call time, and is
never written to the database or the logs; every message this backend raises has it
replaced by *** (servers echo it in 401 and error bodies). The openai client does the
timeouts and the retries on 429, 5xx and connection errors (exponential backoff with
jitter); a 200 whose body is not a usable chat completion (not JSON, an HTML page, no
`choices`, no text, no `usage`) is retried here on the same schedule, because the client
never looks at a 200's body. A thread pool bounds the requests in flight.

The likelihood signal (`score`): the legacy completions endpoint with `echo: true,
logprobs: 1, max_tokens: 1` returns the log probability of every prompt token (vLLM's server
does; see parse_prompt_logprobs for what is read). A server that does not is known only from
its answer, so the first call says so in one line naming the endpoint (ScoreUnsupported).
"""
from __future__ import annotations

import json
import math
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from factory.backends.base import Completion, MissingPackage, ModelIdentity, Request, ScoreUnsupported
from factory.backends.redact import redact

# The openai client's own backoff for 429/5xx (openai/_constants.py: 0.5 s doubling up to
# 8 s, then 0-25 % off as jitter), repeated for malformed answers. With the default 5 retries
# a server that always answers garbage costs 0.5+1+2+4+8 = 15.5 s at most before the job stops.
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 8.0
EXCERPT_CHARS = 200  # of the server's body, quoted in the error line


class BackendUnavailable(ConnectionError):
    """The server could not be reached or kept failing; the message names the URL."""
    exit_code = 1  # a runtime problem (factory/cli.py's codes)


class MissingCredential(RuntimeError):
    """The job names an API-key variable that is not set; the message names the variable."""
    exit_code = 1  # a runtime problem (factory/cli.py's codes)


class Malformed(ValueError):
    """A 200 answer that is not a usable chat completion; the message says what is missing."""
    exit_code = 1  # a runtime problem (factory/cli.py's codes)


class NoPromptLogprobs(ValueError):
    """A well-formed completion that carries no log probabilities of the prompt's tokens: the
    server does not offer them (asking again will not change that)."""
    exit_code = 1  # a runtime problem (factory/cli.py's codes)


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
    data, choice = _first_choice(body)
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


def _first_choice(body: str) -> tuple[dict, object]:
    """(the JSON object, choices[0]) of a 200's body, or Malformed naming what is missing."""
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
    return data, choices[0]


def parse_prompt_logprobs(body: str) -> tuple[float, int]:
    """(mean natural-log probability of the prompt's tokens, tokens counted) from a legacy
    completion asked with echo, logprobs and max_tokens 1.

    `choices[0].logprobs.token_logprobs` holds the prompt's tokens, then the generated ones
    (`usage.completion_tokens` of them, at the end: left out). The prompt's first token has no
    logprob (null: nothing precedes it; a server whose tokenizer adds a BOS shows the BOS as
    that null and then scores every token of the text): leading nulls are left out, so on a
    tokenizer without BOS (SmolLM2) the text's first token is not scored, where the llamacpp
    backend prepends a BOS and scores it. A text of one token scores (0.0, 0), as there.
    NoPromptLogprobs when the answer has no token_logprobs, only the generated token's
    (llama.cpp's C++ server: ggml-org/llama.cpp#27174), or not one per prompt and generated
    token (usage): llama-cpp-python's server answers one short, each value the probability of
    the token one position later (abetlen/llama-cpp-python#1983); read as prompt logprobs, on
    SmolLM2 it ranked a 23-token story below its word-shuffled copy (-11.7 vs -8.2 nats/token,
    where llamacpp's score gives -2.85 vs -7.81), so it is refused rather than used. Malformed
    when it is not a completion."""
    data, choice = _first_choice(body)
    if not isinstance(choice, dict):
        raise Malformed("choices[0] is not an object")
    logprobs = choice.get("logprobs")
    values = logprobs.get("token_logprobs") if isinstance(logprobs, dict) else None
    if not isinstance(values, list):
        raise NoPromptLogprobs("no choices[0].logprobs.token_logprobs in the answer")
    usage = data.get("usage")
    counts = []
    for field in ("prompt_tokens", "completion_tokens"):
        n = usage.get(field) if isinstance(usage, dict) else None
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise Malformed(f"usage.{field} is {n!r}, not a token count")
        counts.append(n)
    prompt_tokens, generated = counts
    entries = f"token_logprobs has {len(values)} entr{'y' if len(values) == 1 else 'ies'}"
    if len(values) <= generated:
        raise NoPromptLogprobs(f"{entries}, all for generated tokens: none for the prompt (echo not honoured)")
    if len(values) != prompt_tokens + generated:
        raise NoPromptLogprobs(f"{entries} for {prompt_tokens} prompt and {generated} generated tokens: not one "
                               "per token, so which token each belongs to is unknown")
    prompt = values[:prompt_tokens]
    first = next((i for i, v in enumerate(prompt) if v is not None), len(prompt))
    scored = prompt[first:]
    for v in scored:
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise Malformed(f"a prompt token's logprob is {v!r}, not a log probability")
    return (sum(scored) / len(scored), len(scored)) if scored else (0.0, 0)


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
        # Every request of this backend (generate's and score's) holds a slot: the remote
        # executor bounds generate's calls by the same max_concurrency, and score, called
        # from the likelihood step of batches in flight, shares this bound with them.
        self._slots = threading.BoundedSemaphore(max(1, endpoint.max_concurrency))

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
            with self._slots:
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

    def _parsed(self, ask, parse, key: str):
        """parse(ask()), asking again on a Malformed answer with backoff (the client never
        looks at a 200's body), up to max_retries times; then one line naming the URL."""
        tries = self.endpoint.max_retries + 1
        for attempt in range(tries):
            body = ask()
            try:
                return parse(body)
            except Malformed as bad:
                if attempt + 1 < tries:
                    time.sleep(backoff_s(attempt, key))
                    continue
                raise self._unavailable(
                    f"server at {self.url} sent a malformed answer {tries} time{'s' if tries > 1 else ''}: "
                    f"{bad}: {one_line(redact(body, self._secret))}") from None

    def _one(self, r: Request) -> Completion:
        started = time.perf_counter()
        text, prompt_tokens, completion_tokens, finish = self._parsed(lambda: self._ask(r), parse_answer, r.key)
        return Completion(key=r.key, text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                          seconds=time.perf_counter() - started, finish_reason=finish)

    def generate(self, requests: list[Request]) -> list[Completion]:
        with ThreadPoolExecutor(max(1, self.endpoint.max_concurrency)) as pool:
            return list(pool.map(self._one, requests))

    def _ask_logprobs(self, text: str) -> str:
        """One legacy completion echoing `text` with its tokens' logprobs; the raw 200 body.
        max_tokens 1, not 0: llama-cpp-python's server reads 0 as "until the context is full"
        and vLLM refused 0 in some versions; the one generated token is cut off by
        parse_prompt_logprobs. Greedy, so the answer is the same every time."""
        try:
            with self._slots:
                raw = self._client.completions.with_raw_response.create(
                    model=self.model, prompt=text, echo=True, logprobs=1, max_tokens=1, temperature=0.0)
        except (self._openai.APIConnectionError, self._openai.APITimeoutError) as err:
            raise self._unavailable(f"cannot reach {self.url}: {err}") from None
        except self._openai.APIStatusError as err:
            sent = one_line(redact(err.response.text or str(err), self._secret))
            if err.status_code in (408, 409, 429) or err.status_code >= 500:  # retried by the client: not a refusal
                raise self._unavailable(f"{self.url}/completions answered {err.status_code} after "
                                        f"{self.endpoint.max_retries} retries: {sent}") from None
            raise self._no_logprobs(f"answered {err.status_code}: {sent}") from None
        return raw.text

    def _no_logprobs(self, what: str) -> ScoreUnsupported:
        return ScoreUnsupported(" ".join(redact(
            f"the likelihood signal needs prompt logprobs from {self.url}/completions (model {self.model}, "
            f"echo: true, logprobs: 1, max_tokens: 1); it {what}; serve the reference model with vLLM, or use "
            f"a llamacpp or vllm decision.likelihood_model", self._secret).split()))

    def _score_one(self, text: str) -> tuple[float, int]:
        if not text:  # no token to score (servers refuse an empty prompt); as llamacpp's score
            return 0.0, 0
        try:
            return self._parsed(lambda: self._ask_logprobs(text), parse_prompt_logprobs, f"score/{text}")
        except NoPromptLogprobs as missing:
            raise self._no_logprobs(f"returned no prompt logprobs: {missing}") from None

    def score(self, texts: list[str]) -> list[tuple[float, int]]:
        """The likelihood signal of each text: (mean natural-log probability per token over the
        prompt's tokens but the first, tokens scored); see parse_prompt_logprobs. One request per
        text, at most endpoint.max_concurrency in flight (shared with generate)."""
        if not texts:
            return []
        with ThreadPoolExecutor(max(1, min(self.endpoint.max_concurrency, len(texts)))) as pool:
            return list(pool.map(self._score_one, texts))
