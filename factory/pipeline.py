"""One job, end to end: recipe seeds -> roles -> rows in DuckDB, a batch at a time,
resumable at any point."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from factory.backends import model_identity
from factory.batches.math import MathBatch
from factory.batches.text import TextBatch
from factory.calls import BoundRole, Budget, Caller
from factory.executors import make_executor
from factory.recipes.base import Recipe
from factory.recipes.math import Math
from factory.recipes.textbook import Textbook
from factory.recipes.tinystories import TinyStories
from factory.spec import JobSpec
from factory.stages import Context
from roles import Adjudicator, Generator, ProblemReviewer, ProblemWriter, ProgramWriter, Solver, StoryReviewer, \
    TextbookReviewer
from stores import BatchRows, Store

# recipe -> (recipe class, batch class, role name -> role factory(template, spec))
RECIPES = {
    "tinystories": (TinyStories, TextBatch, {
        "generator": lambda t, spec: Generator(t),
        "reviewer": lambda t, spec: StoryReviewer(t),
        "adjudicator": lambda t, spec: Adjudicator(t),
    }),
    "textbook": (Textbook, TextBatch, {
        "generator": lambda t, spec: Generator(t, min_words=spec.textbook.min_words),
        "reviewer": lambda t, spec: TextbookReviewer(t),
        "adjudicator": lambda t, spec: Adjudicator(t),
    }),
    "math": (Math, MathBatch, {
        "problem_writer": lambda t, spec: ProblemWriter(t),
        "generator": lambda t, spec: ProgramWriter(t),
        "long_solver": lambda t, spec: Solver(t, "long_solver"),
        "short_solver": lambda t, spec: Solver(t, "short_solver"),
        "reviewer": lambda t, spec: ProblemReviewer(t),
        "adjudicator": lambda t, spec: Adjudicator(t),
    }),
}


@dataclass
class RunResult:
    job: str
    db: str
    seeds_done_before: int
    seeds_processed: int
    model_calls: int
    target: int


class NullProgress:
    def start(self, total: int, done: int) -> None: ...
    def tokens(self, n: int) -> None: ...
    def batch(self, samples: int, outcomes: dict) -> None: ...
    def stop(self) -> None: ...


def bind_roles(spec: JobSpec) -> dict[str, BoundRole]:
    """Resolve templates and model identities before anything touches the database, so a
    bad template or a missing model package fails with nothing written."""
    factories = RECIPES[spec.recipe][2]
    bound = {}
    for name, make in factories.items():
        role_spec = spec.role(name)
        refs = role_spec.pool or [role_spec.model_ref()]
        models = [(ref, model_identity(ref).as_dict()) for ref in refs]
        bound[name] = BoundRole(make(role_spec.template, spec), role_spec, models)
    return bound


def make_budget(spec: JobSpec, store: Store, job: str) -> Budget:
    role_caps = {name: r.max_tokens_budget for name, r in spec.roles.items() if r.max_tokens_budget}
    return Budget(spec.max_tokens_budget, role_caps, spent=store.tokens_spent(job))


def make_recipe(spec: JobSpec) -> Recipe:
    recipe = RECIPES[spec.recipe][0](spec)
    recipe.capacity()  # a missing seed file fails here, before the database exists
    return recipe


def outcomes_of(batch: BatchRows) -> dict:
    counts = {"accepted": 0, "rejected": 0, "adjudicated": 0, "dropped": 0}
    for v in batch.rows["verdicts"]:
        counts[{"accept": "accepted", "reject": "rejected", "drop": "dropped"}[v["decision"]]] += 1
        counts["adjudicated"] += v["stage"] == "adjudicator"
    counts["dropped"] += sum(1 for d in batch.rows["drops"] if d["sample_id"] is None)  # seeds that made no sample
    return counts


def run_job(spec: JobSpec, db: str | Path | None = None, limit: int | None = None, address: str | None = None,
            progress=None) -> RunResult:
    progress = progress or NullProgress()
    bound = bind_roles(spec)
    recipe = make_recipe(spec)
    db = Path(db or spec.db)
    target = spec.num_samples if limit is None else min(spec.num_samples, limit)
    if recipe.capacity() is not None:
        target = min(target, recipe.capacity())  # a seed file of 100 lines gives 100 seeds
    with Store(db) as store:
        job = spec.fingerprint
        store.register_job(job, spec.name, spec.recipe, spec.canonical(), spec.decision.model_dump(), spec.num_samples)
        done = store.done_indices(job)
        todo = [i for i in range(target) if i not in done]
        result = RunResult(job=job, db=str(db), seeds_done_before=target - len(todo), seeds_processed=0,
                           model_calls=0, target=target)
        if not todo:
            return result  # a finished job costs no model call, and starts no engine
        ex = spec.execution
        executor = make_executor(ex.executor, ex.engines, ex.threads_per_engine, address, ex.gpus_per_engine)
        caller = Caller(store, executor, on_completion=lambda c: progress.tokens(c.completion_tokens),
                        budget=make_budget(spec, store, job))
        ctx = Context(spec=spec, job=job, bound=bound, caller=caller)
        runner = RECIPES[spec.recipe][1](ctx, recipe, store)
        progress.start(total=target, done=result.seeds_done_before)
        try:
            for start in range(0, len(todo), ex.batch_size):
                indices = todo[start:start + ex.batch_size]
                batch = runner.run(indices)
                store.write_batch(batch)
                result.seeds_processed += len(indices)
                progress.batch(len(indices), outcomes_of(batch))
        finally:
            progress.stop()
            result.model_calls = caller.model_calls
            executor.close()
    return result
