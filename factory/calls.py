"""Role calls: a role bound to its spec and model(s), run through the completions cache,
the token budgets and an executor. Only requests missing from the cache reach a model."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata

from factory.backends.base import Completion, Request
from factory.job_spec import ModelRef, RoleSpec
from factory.keys import digest, request_key
from roles import Drop, Role


SAVE_EVERY_S = 1.0


class RoleFailed(RuntimeError):
    """An engine could not serve a role (a model that does not fit, a package missing in a
    worker): the message names the role and the model, then the engine's own error."""
    exit_code = 1  # a runtime problem (factory/cli.py's codes)


class BudgetExceeded(RuntimeError):
    """A token budget was reached: the job stops; committed batches and cached completions stay."""
    exit_code = 3  # stopped at a token budget: committed work kept (factory/cli.py's codes)


@lru_cache(maxsize=1)
def library_versions() -> dict:
    """The versions of what made a row (recorded in every model-made row's lineage)."""
    out = {}
    for package in ("factory", "llama-cpp-python", "vllm", "transformers", "openai"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return out


@dataclass
class BoundRole:
    role: Role
    spec: RoleSpec
    models: list[tuple[ModelRef, dict]]  # (model ref, identity); more than one for a pool
    name: str = ""                       # the recipe's name for the role (lineage, drops, budgets)
    job_seed: int = 0

    def __post_init__(self):
        self.name = self.name or self.role.name

    @property
    def identity(self) -> dict:
        return self.models[0][1]

    def eligible(self, exclude: dict | None) -> list[int]:
        if self.spec.exclude_generator_model and exclude is not None:
            return [i for i, (_, ident) in enumerate(self.models) if ident != exclude]
        return list(range(len(self.models)))

    def route(self, index: int, slot: int, exclude: dict | None) -> int:
        """GRA's random role pool: for each seed, a seeded order of the models allowed to
        play this role (the sample's author left out when asked); slot k takes the k-th, so
        the k reviewers of one sample are distinct models while the pool has enough."""
        if len(self.models) == 1:
            return 0
        allowed = self.eligible(exclude)
        if not allowed:  # checked when the job is loaded; here only if a role is bound by hand
            raise RoleFailed(f"role {self.name}: no model of its pool may serve a sample written by {exclude}")
        order = sorted(allowed, key=lambda m: digest(self.job_seed, index, self.name, m))
        return order[slot % len(order)]

    def request(self, variables: dict, seed: int, index: int = 0, slot: int = 0, exclude: dict | None = None) -> Request:
        route = self.route(index, slot, exclude)
        messages = self.role.messages(variables)
        sampling = self.spec.sampling.model_dump()
        key = request_key(self.models[route][1], messages, sampling, seed, self.role.json_schema,
                          self.role.name, self.role.version, self.role.template.sha256)
        return Request(key=key, messages=messages, sampling=sampling, seed=seed, json_schema=self.role.json_schema,
                       route=route)

    def parse(self, variables: dict, completion: Completion):
        """The role's parse; an exception in it (a user's parse, or output no parse expected)
        becomes a drop with the reason: garbage never stops a job."""
        try:
            parsed = self.role.parse(variables, completion.text)
        except RecursionError:
            parsed = Drop("unparseable: nested too deeply", completion.text)
        except Exception as err:  # noqa: BLE001 - any failure of a parse is a drop row, not a crash
            parsed = Drop(f"parse failed: {type(err).__name__}: {str(err)[:200]}", completion.text)
        if isinstance(parsed, Drop) and completion.finish_reason == "length" and self.role.json_schema is not None:
            # JSON stopped at max_tokens is unterminated: say why, not which character broke
            return Drop(f"cut off at max_tokens ({completion.completion_tokens} tokens)", completion.text)
        return parsed

    def lineage(self, request: Request, completion: Completion) -> dict:
        return {
            "role": self.name,
            "template": self.role.template.ref, "template_sha256": self.role.template.sha256,
            "role_version": self.role.version, "model": self.models[request.route][1], "sampling": request.sampling,
            "request_seed": request.seed, "request_key": request.key,
            "prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens,
            "seconds": round(completion.seconds, 4), "versions": library_versions(),
        }


# Prompt tokens are known only when the server answers, so a request reserves an upper
# bound, computed in the driver from the rendered messages (no tokenizer: remote servers
# keep theirs, Ray actors hold the local models, and the bound costs nothing):
# - content and role names: their UTF-8 byte length. Byte-level BPE (SmolLM2: GGUF
#   tokenizer.ggml.model = gpt2; Qwen, Llama 3, GPT-4o likewise) starts from one token per
#   byte and merges only shrink that; SentencePiece with byte fallback (Llama 2, Mistral)
#   gives at most one token per byte plus one dummy-prefix token. Measured on SmolLM2:
#   11 bytes -> 2 tokens, 33 bytes of CJK and emoji -> 21, 1,000 'a' -> 250.
# - PER_MESSAGE_TOKENS = 8 per message for the template's special tokens and separators
#   (SmolLM2/ChatML: <|im_start|>, <|im_end|> and two newlines = 4; Llama 3's header = 5).
#   The fake backend counts len(str(messages)) // 4: repr writes a byte as at most 4
#   characters (\x00), and a message dict's own text is ~30 characters = 8 of its tokens.
# - PER_REQUEST_TOKENS = 128 for what a template adds on its own: SmolLM2 inserts a default
#   system message when none is given (76 bytes + 2 special tokens) and the generation
#   prompt <|im_start|>assistant\n (1 + 10 bytes): 89 at most; Qwen2.5's default system
#   prompt is 68 bytes, Llama 3.1's date header 63.
# - the JSON schema's bytes: llama.cpp and vLLM turn it into a grammar (no prompt tokens),
#   but hosted APIs put structured-output schemas into the prompt.
# - the completion: sampling max_tokens, which every backend enforces (the fake ignores
#   it; its longest text is 57 tokens, under every role's default of 120 to 300).
# The bound is ~4x the real prompt of English text: llama.cpp's server counted 113-133
# prompt tokens for tinystories generator prompts bounded at 575-658. The reservation is
# released when the completion arrives, so it only throttles the last requests before a cap;
# an exact count would need the model's tokenizer in the driver, which it does not have.
PER_MESSAGE_TOKENS = 8
PER_REQUEST_TOKENS = 128


@dataclass
class Budget:
    """Hard token caps (prompt + completion) per role and per job, counting what the job's
    committed rows already spent. A request is sent only if its worst case fits what is
    neither spent nor reserved by requests in flight (reserve), and settles with its real
    count when it arrives, so the spend never passes a cap at any concurrency."""

    job_cap: int | None
    role_caps: dict[str, int]
    spent: dict[str, int] = field(default_factory=dict)
    reserved: dict[str, int] = field(default_factory=dict)
    _lock: threading.Condition = field(default_factory=threading.Condition)  # notified when a reservation ends

    @staticmethod
    def need(request: Request) -> int:
        """The most tokens `request` can cost (prompt bound + max_tokens; see above)."""
        prompt = sum(len(m.get("role", "").encode()) + len(str(m.get("content", "")).encode()) + PER_MESSAGE_TOKENS
                     for m in request.messages)
        if request.json_schema:
            prompt += len(json.dumps(request.json_schema).encode())
        return prompt + PER_REQUEST_TOKENS + int(request.sampling["max_tokens"])

    def _refusing_cap(self, role: str, tokens: int, reserved: bool = True) -> str | None:
        """Which cap `tokens` more would pass, counting reservations (reserved=False: as if
        every request in flight settled at no cost): "job", "role" or None."""
        held = self.reserved if reserved else {}
        if self.job_cap is not None and sum(self.spent.values()) + sum(held.values()) + tokens > self.job_cap:
            return "job"
        cap = self.role_caps.get(role)
        if cap is not None and self.spent.get(role, 0) + held.get(role, 0) + tokens > cap:
            return "role"
        return None

    def reserve(self, role: str, tokens: int, wait: bool = False) -> bool:
        """wait: the asker has nothing in flight (it would stop on a refusal); while other
        callers' requests hold reservations that could make room (batches in flight,
        factory/streaming.py), wait for them to settle and ask again. Only a refusal with
        nothing reserved that could free room is final, as with one caller at a time."""
        with self._lock:
            while self._refusing_cap(role, tokens) is not None:
                if not wait or self._refusing_cap(role, tokens, reserved=False) is not None:
                    return False  # no settling could make room (none in flight: it does not fit)
                self._lock.wait()
            self.reserved[role] = self.reserved.get(role, 0) + tokens
            return True

    def settle(self, role: str, reserved: int, used: int) -> None:
        """A reserved request arrived: its reservation goes, its real count is spent (a
        request that was never reserved settles with reserved=0)."""
        with self._lock:
            self.reserved[role] = self.reserved.get(role, 0) - reserved
            self.spent[role] = self.spent.get(role, 0) + used
            self._lock.notify_all()

    def release(self, role: str, reserved: int) -> None:
        """A reserved request that never arrived (its call failed): nothing was spent."""
        self.settle(role, reserved, 0)

    def refusal(self, role: str, tokens: int) -> str:
        """Why a request needing `tokens` was not sent, with the real spend (nothing in flight)."""
        with self._lock:
            which = self._refusing_cap(role, tokens) or ("role" if role in self.role_caps else "job")
            if which == "job":
                return (f"job token budget reached: {sum(self.spent.values()):,} of {self.job_cap:,} tokens spent; "
                        f"the next request needs up to {tokens:,}")
            return (f"token budget of role {role} reached: {self.spent.get(role, 0):,} of {self.role_caps[role]:,} "
                    f"tokens spent; the next request needs up to {tokens:,}")


class Admission:
    """One Caller.run's door to the budget, handed to the executor: admit(request) reserves
    the request's worst case right before it is sent (False: it does not fit now), settle()
    trades the reservation for the real count when the completion arrives."""

    def __init__(self, budget: Budget, role: str):
        self.budget, self.role = budget, role
        self._held: dict[str, int] = {}  # request key -> tokens reserved, while in flight
        self._lock = threading.Lock()
        self.sent = 0
        self.refused_need: int | None = None  # the need of the last request refused

    def admit(self, request: Request) -> bool:
        need = Budget.need(request)
        with self._lock:
            idle = not self._held  # nothing of this call in flight: a refusal would end it
        if not self.budget.reserve(self.role, need, wait=idle):
            self.refused_need = need
            return False
        with self._lock:
            self._held[request.key] = self._held.get(request.key, 0) + need
            self.sent += 1
        return True

    def settle(self, completion: Completion) -> None:
        with self._lock:
            held = self._held.pop(completion.key, 0)
        self.budget.settle(self.role, held, completion.prompt_tokens + completion.completion_tokens)

    def release(self) -> None:
        with self._lock:
            held, self._held = sum(self._held.values()), {}
        if held:
            self.budget.release(self.role, held)


class Caller:
    def __init__(self, store, executor, on_completion=None, budget: Budget | None = None):
        self.store = store
        self.executor = executor
        self.on_completion = on_completion
        self.budget = budget or Budget(None, {})
        self.model_calls = 0

    def run(self, bound: BoundRole, requests: list[Request]) -> list[Completion]:
        hits = self.store.cached([r.key for r in requests])
        # Two seeds may render the same request: ask the model once.
        unique = list({r.key: r for r in requests if r.key not in hits}.values())
        fresh: dict[str, Completion] = {}
        route_of = {r.key: r.route for r in unique}
        messages_of = {r.key: r.messages for r in unique}
        role = bound.name
        unsaved: list[Completion] = []
        last_save = [time.monotonic()]
        lock = threading.Lock()  # remote completions arrive on the executor's threads

        def save() -> None:
            if not unsaved:
                return
            rows = [{"request_key": c.key, "model": bound.models[route_of[c.key]][1], "text": c.text,
                     "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                     "seconds": round(c.seconds, 4), "finish_reason": c.finish_reason,
                     "messages": list(messages_of[c.key])} for c in unsaved]
            unsaved.clear()
            last_save[0] = time.monotonic()
            self.store.put_completions(rows)

        def arrived(c: Completion) -> None:
            with lock:
                fresh[c.key] = c
                unsaved.append(c)
                # Cached within a second of arriving, in small groups (one transaction each,
                # ~1 ms): a kill -9 loses at most the requests in flight and the last second.
                if time.monotonic() - last_save[0] >= SAVE_EVERY_S:
                    save()
            admission.settle(c)
            if self.on_completion:
                self.on_completion(c)

        # The executor asks admission.admit(request) as it sends each request: one that does
        # not fit the budget is not sent; the executor then waits for what is in flight (it
        # settles and may free room) and stops when the next request does not fit with
        # nothing in flight. What arrived is cached; then the job stops here.
        admission = Admission(self.budget, role)
        try:
            for route in sorted({r.route for r in unique}):
                batch = [r for r in unique if r.route == route]
                ref = bound.models[route][0]
                sent_before, admission.refused_need = admission.sent, None
                try:
                    self.executor.generate(ref, batch, arrived, admit=admission.admit)
                except (BudgetExceeded, ConnectionError, KeyboardInterrupt):
                    raise
                except Exception as err:  # noqa: BLE001 - re-raised with the role that asked
                    first = str(err).strip().splitlines()
                    raise RoleFailed(f"role {role} on {ref.backend}:{ref.model}: "
                                     f"{first[-1] if first else type(err).__name__}") from err
                finally:
                    self.model_calls += admission.sent - sent_before
                unsent = sum(r.key not in fresh for r in batch)
                if unsent and admission.refused_need is not None:
                    raise BudgetExceeded(self.budget.refusal(role, admission.refused_need))
                if unsent:
                    raise RoleFailed(f"role {role} on {ref.backend}:{ref.model}: the engine answered "
                                     f"{len(batch) - unsent} of {len(batch)} requests")
        finally:
            admission.release()  # reservations of requests that never arrived (a failed call)
            # Whatever arrived is cached even if the batch fails: a rerun pays for none of it twice.
            with lock:
                save()
        out = []
        for r in requests:
            if r.key in fresh:
                out.append(fresh[r.key])
            else:
                h = hits[r.key]
                out.append(Completion(key=r.key, text=h["text"], prompt_tokens=h["prompt_tokens"],
                                      completion_tokens=h["completion_tokens"], seconds=h["seconds"],
                                      finish_reason=h["finish_reason"] or "stop", cached=True))
        return out
