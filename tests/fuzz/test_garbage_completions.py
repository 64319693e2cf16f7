"""Garbage never stops a job (issue 15, items 11 and 18).

Every role of every built-in recipe gets garbage (garbage_kinds.py: random bytes, lone
surrogates, 2,000-deep JSON, 1 MB strings, control characters, NaN, wrong types, partial
JSON, an HTML page, ...) while the other roles answer well, one job per (recipe, role),
run in this process. Each job must finish (pytest-timeout bounds it), leave a drop row
with the reason and the raw text (escaped where it cannot be stored as is) for every
completion no role can use, account for every completion it was served, and, rerun over
the cached poison completions, finish again without a model call.
"""
from __future__ import annotations

import json
import random
import time

import duckdb
import fakes
import garbage_kinds
import pytest
from support import query

from factory import backends
from factory.sandbox import SandboxResult
from factory.steps import math as math_steps
from factory.keys import request_seed, seed_id
from factory.pipeline import run_job
from factory.spec import parse_job
from stores.store import TABLES_WRITTEN_PER_BATCH

# (recipe, target role, seeds, options): seeds chosen so the target role sees 40-80
# completions (reviewers x seeds for a reviewer, programs x seeds for the program writer);
# 18 jobs, 1,000+ garbage completions in all.
ROLES = {
    "tinystories": ("generator", "reviewer", "adjudicator"),
    "textbook": ("generator", "reviewer", "adjudicator"),
    "math": ("problem_writer", "generator", "long_solver", "short_solver", "reviewer", "adjudicator"),
    "instruct": ("generator", "reviewer", "adjudicator"),
    "preference": ("prompt_writer", "generator", "reviewer"),
}
REVIEWERS = 3
CANDIDATES = 2
# Completions per job for the target role; the seeds follow from the role's calls per seed.
DEFAULT_PER_JOB = 64
CASES = [(recipe, role) for recipe, roles in ROLES.items() for role in roles]

_WORDS = ("little", "river", "bright", "garden", "quiet", "yellow", "forest", "gentle", "window", "morning",
          "friend", "basket", "cloud", "laughed", "walked", "found", "shiny", "stone", "under", "bridge", "small",
          "boat", "tree", "warm", "bread", "sang", "song", "happy", "dog", "ran", "hill", "blue", "kite", "flew")


def calls_per_seed(recipe: str, role: str, programs: int) -> int:
    if role == "reviewer":
        return REVIEWERS * (CANDIDATES if recipe == "preference" else 1)
    if recipe == "math" and role == "generator":
        return programs
    if recipe == "preference" and role == "generator":
        return CANDIDATES
    return 1


def good_answer(r) -> dict | str:
    """What a well-behaved model answers: a valid object for a schema (unique strings, so no
    exact duplicates), a program and solutions that agree on 42, or a ~40-word text."""
    if r.json_schema:
        obj = fakes.answer_for_schema(r.json_schema, r.seed)
        for name, prop in r.json_schema["properties"].items():
            if prop.get("type") == "string" and "enum" not in prop:
                obj[name] = f"Sam has {2 + r.seed % 50} apples and buys {r.seed % 997 + 3} more. How many now?"
        return obj
    prompt = r.messages[-1]["content"]
    if "def simple_math_problem" in prompt:
        return "```python\ndef simple_math_problem():\n    return 42\n```"
    if "Final answer" in prompt:
        return "Sam adds the numbers one by one and checks the sum twice.\nFinal answer: 42"
    rng = random.Random(r.seed)
    return " ".join(rng.choice(_WORDS) for _ in range(40)) + f" {r.seed}."


class Served:
    """What the garbage model was asked and answered in the current job."""

    def __init__(self, plan):
        self.plan, self.forbidden = list(plan), False
        self.texts, self.kinds, self.seeds = {}, {}, {}  # request key -> garbage text, its kind, request seed


STATE = Served([])


class FuzzBackend:
    """model 'good' answers well; model 'garbage' answers with the next item of the plan."""

    def __init__(self, ref, threads: int = 1):
        self.model = ref.model

    def generate(self, requests):
        if STATE.forbidden:
            raise AssertionError(f"a rerun over cached completions called the model ({len(requests)} requests)")
        out = []
        for r in requests:
            good = good_answer(r)
            if self.model == "garbage":
                kind, seed = STATE.plan.pop(0) if STATE.plan else ("empty", 0)
                text = garbage_kinds.make(kind, seed, good, r.json_schema)
                STATE.texts[r.key], STATE.kinds[r.key], STATE.seeds[r.key] = text, kind, r.seed
            else:
                text = json.dumps(good) if r.json_schema else good
            out.append(backends.Completion(key=r.key, text=text, prompt_tokens=10, completion_tokens=10, seconds=0.0))
        return out


@pytest.fixture(autouse=True)
def fuzz_backend(monkeypatch):
    monkeypatch.setattr(backends, "_REGISTRY", dict(backends._REGISTRY))  # the entry goes away after the test
    backends.register("fuzz", fakes.fake_identity, FuzzBackend)


def good_program_result(source: str) -> SandboxResult:
    """The sandbox's answer to the good program (`return 42`), without its ~50 ms process:
    only the math generator's own job sends garbage programs, and it uses the real sandbox."""
    assert source == "def simple_math_problem():\n    return 42\n", source
    return SandboxResult("ok", "42", "", "", 0.0)


def job_for(recipe: str, target: str, tmp_path) -> tuple[dict, int]:
    options = {"math": {"source": "generated", "programs": 3 if target == "generator" else 2},
               "textbook": {"min_words": 20}, "preference": {"candidates": CANDIDATES}}.get(recipe, {})
    per_seed = calls_per_seed(recipe, target, options.get("programs", 0))
    seeds = -(-DEFAULT_PER_JOB // per_seed)
    roles = {name: {"backend": "fuzz", "model": "garbage" if name == target else "good"} for name in ROLES[recipe]}
    return {"name": f"fuzz-{recipe}-{target}", "recipe": recipe, "num_samples": seeds, "seed": 11,
            "reviewers": REVIEWERS, "roles": roles, "options": options,
            # never accept or reject on the reviews: every reviewed sample goes to the adjudicator
            "decision": {"accept_mean": 10, "max_spread": 0, "reject_mean": 0,
                         "require_seed_words": False, "truncated": "keep", "text_gates": "signal"},  # gates: tests/signals
            "execution": {"executor": "local", "batch_size": 32}, "db": str(tmp_path / "fuzz.duckdb")}, seeds


def stored_form(text: str) -> str:
    """How a text lands in a VARCHAR column: as is, or escaped where it is not valid UTF-8."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def seed_index_of(job_seed: int, role: str, seeds: int, slots: int) -> dict[int, int]:
    """request seed -> seed index: which seed a served request belonged to."""
    return {request_seed(job_seed, i, role, s): i for i in range(seeds) for s in range(slots)}


def request_keys_in_rows(db) -> set[str]:
    keys = set()
    for table in ("samples", "reviews", "verdicts", "solutions", "drops"):
        keys |= {k for (k,) in query(db, f"SELECT request_key FROM {table} WHERE request_key IS NOT NULL")}
    return keys


@pytest.mark.timeout(30)  # one job of ~60 garbage completions takes 0.3-3 s here; a hang fails at 30 s
@pytest.mark.parametrize("recipe,target", CASES, ids=[f"{r}-{t}" for r, t in CASES])
def test_garbage_for_one_role_never_stops_the_job(recipe, target, tmp_path, record_property, monkeypatch):
    job, seeds = job_for(recipe, target, tmp_path)
    spec = parse_job(job)
    if recipe == "math" and target != "generator":
        monkeypatch.setattr(math_steps, "run_program", good_program_result)
    STATE.__init__(garbage_kinds.plan(1000 + CASES.index((recipe, target)), 10 * DEFAULT_PER_JOB))
    started = time.perf_counter()
    result = run_job(spec, db=job["db"])  # 0 crashes: any exception fails the test here
    record_property("wall_s", round(time.perf_counter() - started, 3))  # per job, in --junitxml
    db = job["db"]
    served = dict(STATE.texts)
    record_property("garbage_completions", len(served))
    assert result.seeds_processed == seeds and len(served) >= 40, (result, len(served))

    # Every served completion is accounted for: a row (sample, review, verdict, solution) or a drop.
    missing = {STATE.kinds[k] for k in set(served) - request_keys_in_rows(db)}
    assert not missing, f"completions of kinds {sorted(missing)} left no row"

    # Each completion no role can use is a drop row of this role with a reason and the raw text.
    by_seed = seed_index_of(spec.seed, target, seeds, calls_per_seed(recipe, target, 3))
    drops = {}
    for sid, raw, reason in query(db, f"SELECT seed_id, raw_text, reason FROM drops WHERE role = '{target}'"):
        drops.setdefault((sid, raw), []).append(reason)
    json_role = _is_json_role(spec, target)
    checked = set()
    for key, text in served.items():
        kind = STATE.kinds[key]
        if kind not in garbage_kinds.ALWAYS_DROPPED and not json_role:
            continue  # a text role may use e.g. an HTML page as text; it is accounted for above
        reasons = drops.get((seed_id(result.job, by_seed[STATE.seeds[key]]), stored_form(text)))
        assert reasons and all(r.strip() for r in reasons), f"{kind} served to {target} is not a drop row"
        checked.add(kind)
    assert checked >= set(garbage_kinds.ALWAYS_DROPPED)

    # A rerun over the cached poison completions: no model call, the same drops.
    before = query(db, "SELECT role, seed_id, reviewer_index, reason FROM drops ORDER BY ALL")
    con = duckdb.connect(db)
    for table in (*TABLES_WRITTEN_PER_BATCH, "done_seeds"):
        con.execute(f"DELETE FROM {table}")
    con.close()
    STATE.forbidden = True
    again = run_job(spec, db=db)
    assert again.model_calls == 0 and again.seeds_processed == seeds
    assert query(db, "SELECT role, seed_id, reviewer_index, reason FROM drops ORDER BY ALL") == before


def _is_json_role(spec, role: str) -> bool:
    from factory.pipeline import bind_roles, make_recipe

    return bind_roles(spec, make_recipe(spec))[role].role.json_schema is not None
