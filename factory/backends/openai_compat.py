"""Any OpenAI-compatible server: vllm serve, SGLang, llama.cpp's server, TGI, hosted APIs.

The API key is read from the environment variable the job names, at call time, and is
never written to the database or the logs. The openai client does the timeouts and the
retries (exponential backoff with jitter on 429, 5xx and connection errors); a thread pool
bounds the requests in flight.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

from factory.backends.base import Completion, MissingPackage, ModelIdentity, Request


class BackendUnavailable(ConnectionError):
    """The server could not be reached or kept failing; the message names the URL."""


class MissingCredential(RuntimeError):
    """The job names an API-key variable that is not set; the message names the variable."""


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


class OpenAIBackend:
    def __init__(self, model: str, endpoint, threads: int = 1):
        try:
            import openai
        except ImportError:
            raise MissingPackage("the openai backend needs the openai package: pip install openai") from None
        self.identity = identity_for(model, endpoint)
        self.model, self.endpoint = model, endpoint
        self._openai = openai
        self._client = openai.OpenAI(base_url=endpoint.base_url, api_key=_api_key(endpoint),
                                     timeout=endpoint.timeout_s, max_retries=endpoint.max_retries)

    def _response_format(self, schema: dict | None):
        if schema is None:
            return None
        if self.endpoint.schema_format == "json_object":  # llama.cpp's server spells it this way
            return {"type": "json_object", "schema": schema}
        return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": True}}

    def _one(self, r: Request) -> Completion:
        s = r.sampling
        extra = {"top_k": s["top_k"], "repeat_penalty": s["repeat_penalty"]} if self.endpoint.send_extra_sampling else {}
        fmt = self._response_format(r.json_schema)
        started = time.perf_counter()
        try:
            out = self._client.chat.completions.create(
                model=self.model, messages=list(r.messages), temperature=s["temperature"], top_p=s["top_p"],
                max_tokens=s["max_tokens"], seed=r.seed, extra_body=extra or None,
                **({"response_format": fmt} if fmt else {}))
        except (self._openai.APIConnectionError, self._openai.APITimeoutError) as err:
            raise BackendUnavailable(f"cannot reach {self.endpoint.base_url}: {err}") from None
        except self._openai.APIStatusError as err:
            raise BackendUnavailable(f"{self.endpoint.base_url} answered {err.status_code} after "
                                     f"{self.endpoint.max_retries} retries: {str(err)[:200]}") from None
        choice = out.choices[0]
        usage = out.usage
        return Completion(key=r.key, text=choice.message.content or "",
                          prompt_tokens=usage.prompt_tokens if usage else 0,
                          completion_tokens=usage.completion_tokens if usage else 0,
                          seconds=time.perf_counter() - started, finish_reason=choice.finish_reason or "stop")

    def generate(self, requests: list[Request]) -> list[Completion]:
        with ThreadPoolExecutor(max(1, self.endpoint.max_concurrency)) as pool:
            return list(pool.map(self._one, requests))
