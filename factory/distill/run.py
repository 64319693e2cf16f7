"""One distillation, end to end: plan (eval items, mixtures) -> per mixture: train a student
(resuming from its last checkpoint) -> evaluate it -> one runs row with its evaluation rows.

The database is open only to read the plan and to record: training runs for minutes and
must not hold DuckDB's single writer lock (`factory runs` can read meanwhile). A run
already in the runs table is not trained again."""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from factory.distill.plan import Plan, plan_math, plan_stories
from factory.distill.spec import DistillSpec
from factory.keys import digest
from factory.spec import JobError
from stores import Store, StoreError
from stores.distill import finished_run, record_mixture, record_run
from stores.jobs import job_spec


@dataclass
class RunSummary:
    mixture: str
    run_id: str
    rows: int
    status: str  # trained | already done
    metric: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    seed: int | None = None  # the spec's `seeds`: which one this run trained with


class NullProgress:
    def stage(self, text: str) -> None: ...
    def step(self, step: int, total: int, loss: float) -> None: ...
    def done(self) -> None: ...


def cache_dir() -> Path:
    """Converted tokenizers and checkpoints (the SmolLM2 tokenizer from the GGUF takes ~7 s
    to build and 0.3 s to reload)."""
    return Path(os.environ.get("FACTORY_CACHE", Path.home() / ".cache" / "factory"))


def device_of(spec: DistillSpec) -> str:
    import torch

    if spec.student.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec.student.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("student.device: cuda asked, but torch sees no GPU (use auto or cpu)")
    return spec.student.device


def run_id_of(spec: DistillSpec, plan: Plan, mixture_id: str, seed: int | None = None,
              tokenizer: str | None = None) -> str:
    """seed None (a spec without `seeds`): the seed stays out of the id, so single-seed ids are stable.
    With a seed, spec is the seed's spec (with_seed) and the seed enters the id by name too.
    tokenizer: a trained tokenizer's sha256 (None for SmolLM2's, the default: out of the id)."""
    extra = [{"tokenizer": tokenizer}] if tokenizer else []
    if seed is None:
        return digest("run", mixture_id, spec.run_settings(), plan.eval_set, *extra)
    return digest("run", mixture_id, spec.run_settings(), plan.eval_set, {"seed": seed}, *extra)


def seed_group_of(spec: DistillSpec, plan: Plan, mixture_id: str, tokenizer: str | None = None) -> str:
    """What the runs of one mixture across `seeds` share (their id without the seed):
    `factory runs` aggregates the runs of a group. Not the `seeds` list itself: growing it
    from [1, 2, 3] to [1, 2, 3, 4] adds a seed to the same group (the first 3 are "already
    done"); with the list in the digest, row a.4 of docs/experiments.md saw only the new seed."""
    extra = [{"tokenizer": tokenizer}] if tokenizer else []
    return digest("seed-group", mixture_id, spec.with_seed(0).run_settings(), plan.eval_set, *extra)


def _trained_tokenizer(spec: DistillSpec, plan: Plan):
    """student.tokenizer kind trained: the tokenizer of the union of every mixture's rows (all
    mixtures and seeds of a distillation share it; evaluation items never train it), trained
    or reloaded from output_dir/tokenizers/. A vocab_size the rows cannot support raises one
    line before anything is written. None for SmolLM2's tokenizer."""
    if not spec.student.trained_tokenizer:
        return None
    from factory.distill.tokenizer import trained_tokenizer, unknown_chars

    texts = sorted({t for m in plan.mixtures for _, c in m.rows for t in (c.prompt, c.target) if t})
    trained = trained_tokenizer(texts, spec.student.tokenizer.vocab_size, Path(spec.output_dir) / "tokenizers")
    # Evaluation prompts may hold characters no training row has: they encode as <unk>, counted here.
    prompts = [_eval_prompt(spec, i) for i in plan.items]
    trained.meta["eval_unknown_chars"] = unknown_chars(trained, prompts)
    return trained


def _eval_prompt(spec: DistillSpec, item) -> str:
    from factory.distill.format import math_prompt, story_prompt

    return math_prompt(item.question) if spec.task == "math" else story_prompt(item.question)


def _seeded(spec: DistillSpec) -> list[tuple[int | None, DistillSpec]]:
    return [(None, spec)] if spec.seeds is None else [(s, spec.with_seed(s)) for s in spec.seeds]


def _teacher(spec: DistillSpec, db: Path, device: str):
    if spec.training.method not in ("kd", "gkd"):
        return None
    from factory.distill.kd import Teacher
    from factory.distill.kd_cache import TopKCache, cache_root_for

    # gkd scores new samples at every step and never reads the top-k cache
    return Teacher(getattr(spec.training, spec.training.method).teacher, cache_dir(),
                   TopKCache(cache_root_for(db)), device)


def _record_plan(store: Store, spec: DistillSpec, plan: Plan) -> None:
    selection = {"job": plan.job, "large_job": plan.large_job, "use": spec.source.use,
                 "require": spec.source.require, "seed": spec.training.seed}
    for m in plan.mixtures:
        record_mixture(store, {
            "mixture_id": m.mixture_id, "distill": spec.name, "name": m.name, "data_fingerprint": plan.data_fingerprint,
            "parts": m.parts, "counts": m.counts, "rows": len(m.rows), "selection": selection,
        }, [{"mixture_id": m.mixture_id, "position": i, "part": part, "source_id": c.source_id,
             "sample_id": c.sample_id} for i, (part, c) in enumerate(m.rows)])


def _evaluate(spec: DistillSpec, plan: Plan, db: Path, student):
    if spec.task == "math":
        from factory.distill.evaluate import evaluate_math

        return "accuracy", evaluate_math(student, plan.items, spec.evaluation)
    from factory.distill.stories import ContinuationGrader, evaluate_stories
    from factory.spec import RoleSpec

    from factory.distill.heldout import TeacherScorer, story_losses, teacher_ref

    with Store(db) as store:  # the grader caches its reviews as completions, the teacher its scores
        job = job_spec(store, plan.job)
        reviewer = RoleSpec.model_validate(job["roles"]["reviewer"])
        grader = ContinuationGrader(reviewer, store, seed=spec.evaluation.seed)
        try:  # the teacher scores through the grader's engines: a teacher that also reviews loads once
            teacher = TeacherScorer(teacher_ref(job), store, grader.executor)
            return "mean_review_score", evaluate_stories(
                student, plan.items, spec.evaluation, grader, teacher=teacher,
                losses_fn=lambda texts: story_losses(student, texts, spec.training.max_length))
        finally:
            grader.close()


@dataclass(frozen=True)
class RunTask:
    """One run to train and evaluate; it travels by pickle to a parallel_runs worker."""
    spec: DistillSpec
    plan: Plan
    db: Path
    mixture: object  # a Mixture of the plan
    run_id: str
    seeding: dict | None  # {"seed", "seeds", "seed_group"} when the distillation lists seeds
    tokenizer: object = None  # the distillation's trained tokenizer, if it has one

    def expected_characters(self) -> int:
        """What the run will train on, in characters of prompt and target: its steps times its
        batch times its rows' mean length. parallel_runs starts the longest runs first, so a
        long run started last does not leave a core idle; on the demo's 3 long + 3 short runs
        either order ends at about the same time (docs/experiments.md row b.5)."""
        rows, training = self.mixture.rows, self.spec.training
        if not rows:
            return 0
        per_step = training.batch_size * training.grad_accumulation
        steps = min(training.max_steps or 10**12, training.epochs * -(-len(rows) // per_step))
        mean = sum(len(c.prompt) + len(c.target) for _, c in rows) / len(rows)
        return int(steps * per_step * mean)


def train_and_evaluate(task: RunTask, progress=None, teacher=None, on_step=None):
    """Train one run (resuming from its checkpoint) and evaluate it: (runs row, its evaluation
    rows, summary), recorded by the caller. on_step(step, total, loss) is called after each
    optimizer step besides progress.step (parallel_runs' workers stop there when orphaned)."""
    from factory.distill.student import load_student, load_trained
    from factory.distill.train import train

    spec, plan, db, mixture, run_id = task.spec, task.plan, task.db, task.mixture, task.run_id
    seeding, tokenizer = task.seeding, task.tokenizer
    progress = progress or NullProgress()
    started = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    seeded = f" (seed {seeding['seed']})" if seeding else ""
    progress.stage(f"{mixture.name}{seeded}: training on {len(mixture.rows)} rows {dict(mixture.counts)}")
    device = device_of(spec)
    student = load_student(spec.student, cache_dir(), spec.training.lora, tokenizer)
    student.model.to(device)
    result = train(student, [(c.prompt, c.target) for _, c in mixture.rows], spec.training,
                   Path(spec.output_dir) / run_id, on_step=_both(progress.step, on_step), teacher=teacher)
    progress.stage(f"{mixture.name}: evaluating on {len(plan.items)} items")
    trained = load_trained(Path(result.checkpoint))
    trained.model.to(device)
    metric, report = _evaluate(spec, plan, db, trained)
    m = report.metrics
    # both evaluations report their 95% interval as ci_low / ci_high
    value, low, high = m.get("accuracy" if metric == "accuracy" else "mean_score"), m.get("ci_low"), m.get("ci_high")
    run = {"run_id": run_id, "distill": spec.name, "task": spec.task, "data_fingerprint": plan.data_fingerprint,
           "mixture_id": mixture.mixture_id, "mixture": mixture.name, "eval_set": plan.eval_set,
           "student": {**spec.student.model_dump(mode="json"), **student.description, "ran_on": device,
                       **({"tokenizer_report": {**tokenizer.meta, "path": str(tokenizer.path.resolve()),
                                                "sha256": tokenizer.sha256}} if tokenizer else {})},
           "hyperparameters": spec.training.model_dump(mode="json"), "training": asdict(result), "metric": metric,
           "value": value, "ci_low": low, "ci_high": high,
           "metrics": {**m, "eval_removed_for_overlap": plan.eval_removed, "evaluation": spec.evaluation.model_dump(mode="json"),
                       **(seeding or {})},
           "checkpoint": str(Path(result.checkpoint).resolve()), "started_at": started}
    evals = [{"run_id": run_id, "item_id": r["item_id"], "prompt": r.get("question", r.get("prompt", "")),
              "reference": r.get("reference"), "output": r["output"], "answer": r.get("answer"),
              "correct": r.get("correct"), "score": r.get("score"), "output_tokens": r.get("output_tokens"),
              "details": {k: v for k, v in r.items()
                          if k in ("tokens_after_correct", "votes", "details", "heldout", "teacher")}}
             for r in report.rows]
    return run, evals, RunSummary(mixture.name, run_id, len(mixture.rows), "trained", metric, value, low, high,
                                  seeding["seed"] if seeding else None)


def _both(first, second):
    if second is None:
        return first

    def on_step(step: int, total: int, loss: float):
        first(step, total, loss)
        return second(step, total, loss)
    return on_step


def _record(db: Path, run: dict, evals: list[dict]) -> None:
    with Store(db) as store:
        record_run(store, run, evals)


def run_distill(spec: DistillSpec, db: str | Path | None = None, progress=None,
                address: str | None = None) -> list[RunSummary]:
    """address: a Ray cluster for training.workers > 1 (Ray Train's workers go there)."""
    from factory.distill.student import check_student

    progress = progress or NullProgress()
    db = Path(db or spec.db)
    check_student(spec.student)  # a student path that is not a model: one line, nothing written
    if not db.exists():
        raise StoreError(f"no database at {db}: run the source job first (factory run JOB.yaml), or pass --db")
    if spec.training.method in ("kd", "gkd"):  # a teacher of another tokenizer: one line naming both, nothing written
        from factory.distill.kd import check_same_tokenizer

        method = spec.training.method
        check_same_tokenizer(spec.student, getattr(spec.training, method).teacher, cache_dir(), f"training.{method}")
    if address is not None and spec.training.workers <= 1:  # it would train here, not on that cluster
        raise JobError(f"--address: only Ray Train workers run on a cluster, and training.workers is "
                       f"{spec.training.workers}; set training.workers to 2 or more, or leave --address out")
    if spec.training.workers > 1:  # more workers than the Ray cluster's CPUs/GPUs: one line, nothing written
        from factory.distill.ray_train import check_workers

        check_workers(spec.training.workers, device_of(spec), address)
    with Store(db) as store:
        plan = (plan_math if spec.task == "math" else plan_stories)(store, spec)
        trained = _trained_tokenizer(spec, plan)  # a vocab_size the rows cannot fill: one line, nothing recorded
        sha = trained.sha256 if trained else None
        _record_plan(store, spec, plan)
        todo = [(seed, seeded, m, run_id_of(seeded, plan, m.mixture_id, seed, sha))
                for seed, seeded in _seeded(spec) for m in plan.mixtures]
        done = {run_id: finished_run(store, run_id) for *_, run_id in todo}
    seeds = f", {len(spec.seeds)} seeds each" if spec.seeds else ""
    progress.stage(f"{len(plan.mixtures)} mixtures of {len(plan.mixtures[0].rows)} rows{seeds}; {len(plan.items)} "
                   f"evaluation items ({plan.eval_removed} removed for sharing an n-gram with training rows)")
    if trained is not None:
        m = trained.meta
        progress.stage(f"tokenizer: {m['vocab_size']} tokens trained on {m['texts']} distinct row texts "
                       f"({'reloaded from' if m['reloaded'] else 'saved to'} {trained.path}); "
                       f"{m['eval_unknown_chars']} evaluation characters outside it encode as <unk>")
    # One teacher for every mixture and seed: its weights load once, on the first cache miss.
    teacher = _teacher(spec, db, device_of(spec))
    finished: dict[str, RunSummary] = {}

    def record(run: dict, evals: list[dict], summary: RunSummary) -> None:
        _record(db, run, evals)
        finished[summary.run_id] = summary

    tasks = []
    for seed, seeded, mixture, run_id in todo:
        old = done[run_id]
        if old:
            finished[run_id] = RunSummary(mixture.name, run_id, old["rows"], "already done", old["metric"],
                                          old["value"], old["ci_low"], old["ci_high"], seed)
            continue
        seeding = None if seed is None else {
            "seed": seed, "seeds": spec.seeds, "seed_group": seed_group_of(spec, plan, mixture.mixture_id, sha)}
        tasks.append(RunTask(seeded, plan, db, mixture, run_id, seeding, trained))
    try:
        if spec.parallel_runs > 1 and len(tasks) > 1:
            from factory.distill.parallel_runs import train_in_processes

            progress.stage(f"training {len(tasks)} runs, {min(spec.parallel_runs, len(tasks))} at a time")
            longest_first = sorted(tasks, key=RunTask.expected_characters, reverse=True)
            train_in_processes(train_and_evaluate, longest_first, spec.parallel_runs, spec.training.threads,
                               record, progress)
        for task in tasks:  # one at a time (or what parallel_runs left: nothing, or it raised)
            if task.run_id not in finished:
                record(*train_and_evaluate(task, progress, teacher))
    finally:
        progress.done()
        if teacher is not None:
            teacher.close()
    return [finished[run_id] for *_, run_id in todo]
