"""A fake backend with the real signature: deterministic text from the request, no model.

Any request with a JSON schema gets a valid answer built from the schema itself (so a new
recipe or rubric needs no edit here); SCRIPT holds exact answers a test wants served first
(simonw/llm's mock model), CALLS every request seen.
Model names pick behaviours: "fake" answers well; "fake-garbage" answers schema requests
with prose (as an unconstrained 135M model does); "fake-slow" sleeps per request;
"fake-truncated" says every free-text completion stopped at max_tokens (finish_reason length);
"fake-cut-json" stops every JSON completion half way, at max_tokens (unterminated JSON).
score(texts) gives the likelihood signal as a deterministic function of the text
(fake_likelihood); SCORED records the texts scored.
expected_scores(items, fields) gives each score field of a JSON completion a known
distribution around the written value (EXPECTED_SHAPE, fake_expected); EXPECTED records the
(messages, text) pairs asked. The "fake" backend is not declared able to give them (as
openai and vllm): a test that runs them declares it (declare_expected_scores).
"""
from __future__ import annotations

import hashlib
import json
import re
import time

from factory.backends import Completion, ModelIdentity, Request, register
from factory.backends.base import declare_scoring

CALLS: list[Request] = []
SCRIPT: list[str] = []  # served in order before any computed answer
SCORED: list[str] = []  # texts given to score(), in order
EXPECTED: list[tuple] = []  # (messages, completion text) given to expected_scores(), in order
# offset from the written value -> probability; off the scale's ends it is dropped, and
# the rest renormalized: 7 -> 0.3*6 + 0.5*7 + 0.2*8 = 6.9; 1 -> (0.5*1 + 0.2*2) / 0.7.
EXPECTED_SHAPE = {-1: 0.3, 0: 0.5, 1: 0.2}


def script(*texts: str) -> None:
    SCRIPT.extend(texts)


def _h(*parts) -> int:
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:8], 16)


class FakeBackend:
    def __init__(self, model: str, threads: int = 1):
        if model == "fake-too-big":  # what an engine says when the model does not fit
            raise RuntimeError("engine error\nout of memory: the model needs 16.0 GiB, 9.5 GiB free")
        self.identity = ModelIdentity(backend="fake", model=model, file_sha256="0" * 64)
        self.model = model

    def generate(self, requests: list[Request]) -> list[Completion]:
        out = []
        for r in requests:
            CALLS.append(r)
            if self.model == "fake-slow":
                time.sleep(0.05)
            text = SCRIPT.pop(0) if SCRIPT else self._answer(r)
            finish = "length" if self.model == "fake-truncated" and not r.json_schema else "stop"
            if self.model == "fake-cut-json" and r.json_schema:
                text, finish = text[:len(text) // 2], "length"
            out.append(Completion(key=r.key, text=text, prompt_tokens=len(str(r.messages)) // 4,
                                  completion_tokens=len(text) // 4, seconds=0.01, finish_reason=finish))
        return out

    def score(self, texts: list[str]) -> list[tuple[float, int]]:
        SCORED.extend(texts)
        return [fake_likelihood(t) for t in texts]

    def expected_scores(self, items: list[tuple], fields: dict[str, list[int]]) -> list[dict]:
        EXPECTED.extend(items)
        return [fake_expected(text, fields) for _, text in items]

    def _answer(self, r: Request) -> str:
        prompt = r.messages[-1]["content"]
        h = _h(prompt, r.seed)
        if r.json_schema and self.model == "fake-garbage":
            return "Sure! Here is my review: the story is nice."
        if r.json_schema:
            return json.dumps(answer_for_schema(r.json_schema, h))
        if "def simple_math_problem" in prompt:
            return self._program(prompt, r.seed)
        if "Final answer" in prompt:
            return f"We add the numbers step by step.\nFinal answer: {self._sum(prompt)}"
        words = re.findall(r'"([a-z]+)"', prompt)[:3]
        if h % 7 == 0:
            return "Too short."  # exercises the generator's drop path
        story = ("Once upon a time there was a little dog. The dog liked to {words} every day. "
                 "One day the dog met a cat and they played in the sun. They were happy and they went home. "
                 "The end of story number {n}.")
        if h % 5 == 0:  # the same text for different seeds (case and spacing aside): exact dedup
            return story.format(words="play", n=0).upper().replace(" ", "  ") if h % 2 else story.format(words="play", n=0)
        return story.format(words=" and ".join(words), n=h)


    @staticmethod
    def _sum(prompt: str) -> int:
        question = prompt.split("Problem:")[-1] if "Problem:" in prompt else prompt
        return sum(int(n) for n in re.findall(r"\b\d+\b", question.split("End with")[0]))

    def _program(self, prompt: str, seed: int) -> str:
        """A program that adds the question's numbers; some attempts are hostile or broken,
        as a model's output can be."""
        question = prompt.split('"""')[1] if '"""' in prompt else prompt
        total = sum(int(n) for n in re.findall(r"\b\d+\b", question))
        kind = seed % 10
        if kind == 0:
            return "```python\ndef simple_math_problem():\n    import os\n    return os.system('id')\n```"
        if kind == 1:
            return "I think the answer is easy."
        return f"```python\ndef simple_math_problem():\n    total = {total}\n    return total\n```\nThis adds them."


def fake_likelihood(text: str) -> tuple[float, int]:
    """(mean log-probability in [-4, -1), tokens): a function of the text alone."""
    return -1.0 - (_h("likelihood", text) % 300) / 100, max(1, len(text) // 4)


def fake_expected(text: str, fields: dict[str, list[int]]) -> dict[str, dict[int, float]]:
    """EXPECTED_SHAPE around each field's written value, over its allowed values, renormalized."""
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    out = {}
    for name, allowed in fields.items():
        written = data.get(name) if isinstance(data, dict) else None
        if not isinstance(written, int) or isinstance(written, bool):
            continue
        mass = {written + k: p for k, p in EXPECTED_SHAPE.items() if written + k in allowed}
        total = sum(mass.values())
        out[name] = {v: p / total for v, p in sorted(mass.items())}
    return out


def answer_for_schema(schema: dict, h: int) -> dict:
    """A valid object for a flat JSON schema, varied by h: integer scales centred so that
    some samples are accepted, some rejected and some adjudicated; booleans mixed; enums
    drawn; strings long enough for their minLength (with numbers in them, so a written
    problem can be solved)."""
    out = {}
    for n, (name, prop) in enumerate(schema["properties"].items()):
        enum, kind = prop.get("enum"), prop.get("type")
        if enum and kind == "integer":
            low = len(enum) // 5
            base = low + h % (len(enum) - 2 * low)  # 1..10: 3..8
            out[name] = enum[min(len(enum) - 1, max(0, base + (h >> (3 * n)) % 3 - 1))]
        elif enum:
            out[name] = enum[(h >> n) % len(enum)]
        elif kind == "boolean":
            out[name] = bool((h >> n) % 2) or n < 2
        elif kind == "integer":
            out[name] = prop.get("minimum", 0) + h % 5
        elif prop.get("minLength", 0) >= 10:
            a, b = 2 + h % 7, 3 + (h >> 4) % 5
            out[name] = f"Sam has {a} apples and buys {b} more. How many apples does Sam have?"
        else:
            out[name] = "fake judge"
    return out


def fake_identity(ref) -> ModelIdentity:
    return ModelIdentity(backend="fake", model=ref.model, file_sha256="0" * 64)


class FakeBackendPlugin(FakeBackend):
    """The same fake as a backend class a job can name (module:Class, entry point)."""

    def __init__(self, ref, threads: int = 1):
        super().__init__(ref.model, threads)

    @classmethod
    def identity(cls, ref) -> ModelIdentity:
        return fake_identity(ref)


def install() -> None:
    register("fake", fake_identity, lambda ref, threads=1: FakeBackend(ref.model, threads))
    declare_scoring("fake")
