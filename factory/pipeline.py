"""One job, end to end: recipe seeds -> roles -> rows in DuckDB, a batch at a time,
resumable at any point."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from factory.backends import model_identity
from factory.calls import BoundRole, Budget, Caller
from factory.executors import make_executor
from factory.keys import digest
from factory.recipes.base import Recipe
from factory.spec import JobError, JobSpec, known_fingerprints, recipe_of, with_recipe_known
from factory.steps import BatchState, Context, StepError, check_steps
from factory.streaming import SerialProgress, run_batches
from stores import BatchRows, Store
from stores.snapshot import SnapshotWriter, starting_marker

# Roles whose output is a sample: their model is the sample's author (kept out of its
# reviews and adjudication when a role asks for exclude_generator_model).
AUTHOR_ROLES = ("generator", "problem_writer", "prompt_writer", "editor")


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


def bind_roles(spec: JobSpec, recipe: Recipe) -> dict[str, BoundRole]:
    """Resolve templates and model identities before anything touches the database, so a
    bad template or a missing model package fails with nothing written."""
    bound = {}
    for name, definition in recipe.roles.items():
        role_spec = spec.role(name)
        template = spec.template(role_spec.template)
        models = [(ref, model_identity(ref).as_dict()) for ref in role_spec.models()]
        role = definition.make(template, recipe)
        if any(ref.backend == "llamacpp" for ref, _ in models):
            from factory.backends.llamacpp import schema_problem

            problem = schema_problem(role.json_schema)
            if problem:  # before any generation: the engine would die on it
                raise JobError(f"roles.{name}: output schema {problem}")
        bound[name] = BoundRole(role, role_spec, models, name, spec.seed)
    _check_pools(bound)
    return bound


def _check_pools(bound: dict[str, BoundRole]) -> None:
    """A role told to keep a sample's author out must have another model for every author."""
    authors = [ident for name in AUTHOR_ROLES if name in bound for _, ident in bound[name].models]
    for name, b in bound.items():
        if not b.spec.exclude_generator_model:
            continue
        for author in authors:
            if not b.eligible(author):
                raise JobError(f"roles.{name}.exclude_generator_model: no model of the {name}'s pool may serve a "
                               f"sample written by {author['backend']}:{author['model']}; add another model to "
                               f"roles.{name}.pool")


def make_budget(spec: JobSpec, store: Store, job: str) -> Budget:
    role_caps = {name: r.max_tokens_budget for name, r in spec.roles.items() if r.max_tokens_budget}
    return Budget(spec.max_tokens_budget, role_caps, spent=store.tokens_spent(job))


def make_recipe(spec: JobSpec, db: str | Path | None = None) -> Recipe:
    if not spec.recipe_known:  # a spec built in Python, not read by parse_job, learns its recipe here
        with_recipe_known(spec)
    recipe = recipe_of(spec)(spec)
    recipe.database = Path(db or spec.db)  # a recipe may read earlier jobs of the run's database
    recipe.capacity()  # a missing seed file fails here, before the database exists
    try:
        check_steps(recipe.steps(), recipe.name)
    except StepError as err:
        raise JobError(f"recipe: {err}") from None
    return recipe


def job_id(store: Store, spec: JobSpec) -> str:
    """The job's fingerprint, or the one it had in a database made before the fingerprint
    changed (that job continues)."""
    return store.existing_job(known_fingerprints(spec)) or spec.fingerprint


def run_batch(ctx: Context, indices: list[int], between=None) -> BatchRows:
    """The recipe's steps, in order, over one batch of seed indices; between(state) after
    each step (batches in flight: factory/streaming.py)."""
    state = BatchState(BatchRows(batch_id=digest("batch", ctx.job, indices), job=ctx.job, seed_indices=indices))
    for step in ctx.recipe.steps():
        step.run(ctx, state)
        if between is not None:
            between(state)
    return state.batch


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
    db = Path(db or spec.db)
    recipe = make_recipe(spec, db)
    bound = bind_roles(spec, recipe)
    target = spec.num_samples if limit is None else min(spec.num_samples, limit)
    if recipe.capacity() is not None:
        target = min(target, recipe.capacity())  # a seed file of 100 lines gives 100 seeds
    snapshot: SnapshotWriter | None = None
    starting = starting_marker(db, os.getpid())  # a reader waits for the first snapshot
    try:
        try:
            starting.write_text(f"{os.getpid()}\n")
        except OSError:
            pass  # no such folder: Store says so next
        with Store(db) as store:
            job = job_id(store, spec)
            store.register_job(job, spec.name, spec.recipe_reference(), spec.canonical(), spec.decision.model_dump(),
                               spec.num_samples,
                               spec.curation.model_dump(mode="json"))
            done = store.done_indices(job)
            todo = [i for i in range(target) if i not in done]
            result = RunResult(job=job, db=str(db), seeds_done_before=target - len(todo), seeds_processed=0,
                               model_calls=0, target=target)
            if not todo:
                return result  # a finished job costs no model call, and starts no engine
            # What factory stats / sql read while this run holds db, written before the engines
            # start (a Ray start takes seconds) and removed only once db is closed, after the
            # engines stop: a reader at any moment finds the snapshot or a free database.
            snapshot = SnapshotWriter.of(store)
            snapshot.refresh(force=True)  # watchers see the job before its first batch ends
            starting.unlink(missing_ok=True)
            ex = spec.execution
            batches = [todo[start:start + ex.batch_size] for start in range(0, len(todo), ex.batch_size)]
            executor = make_executor(ex.executor, ex.engines, ex.threads_per_engine, address, ex.gpus_per_engine,
                                     ex.slots_per_engine)
            if ex.batches_in_flight > 1:
                progress = SerialProgress(progress)  # tokens() comes from every batch's thread
            budget = make_budget(spec, store, job)
            callers: list[Caller] = []

            def context(batch_store: Store) -> Context:
                caller = Caller(batch_store, executor, on_completion=lambda c: progress.tokens(c.completion_tokens),
                                budget=budget)
                callers.append(caller)
                return Context(spec=spec, job=job, bound=bound, caller=caller, recipe=recipe, store=batch_store)

            committed = 0

            def commit(batch: BatchRows) -> None:
                nonlocal committed
                store.write_batch(batch)
                # The first committed batch of each in-flight group (every batch with one in
                # flight) and the last are copied whatever the rate limit: batches of a group
                # commit together, so a watcher sees rows within one batch of their commit
                # (a 12-seed job in one batch used to show 0 rows for the whole run). Others
                # are rate-limited: under 5 % of the run's time (stores/snapshot.py).
                snapshot.refresh(force=committed % ex.batches_in_flight == 0 or committed == len(batches) - 1)
                committed += 1
                result.seeds_processed += len(batch.seed_indices)
                progress.batch(len(batch.seed_indices), outcomes_of(batch))

            progress.start(total=target, done=result.seeds_done_before)
            try:
                run_batches(store, batches, ex.batches_in_flight, context, run_batch, commit)
            finally:
                progress.stop()
                result.model_calls = sum(caller.model_calls for caller in callers)
                executor.close()
    finally:
        starting.unlink(missing_ok=True)
        if snapshot is not None:
            snapshot.close()  # db is closed: readers read it itself from now on
    return result
