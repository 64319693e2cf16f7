"""From the store to a plan: the evaluation items, the candidate pool, and the mixtures
drawn from it. Reads only; the caller records the mixtures. `con`: a stores.Store, or a
connection (the stores functions take either)."""
from __future__ import annotations

from dataclasses import dataclass

from factory.distill.eval_sets import EvalItem, OverlapFilter, builtin_items, file_items, held_out
from factory.distill.format import math_prompt, math_target
from factory.distill.mixtures import Candidate, Mixture, build_mixture, choose_problems, problem_pool, rows_to_use
from factory.distill.spec import DistillSpec
from factory.keys import digest
from factory.spec import JobError
from stores.curated import warn_if_uncurated
from stores.distill import reference_problems, solution_candidates, story_candidates
from stores.jobs import job_recipe
from stores.stats import resolve_job

# Which solutions a part draws from: (the main or the large teacher's job, solution kind).
PART_SOURCE = {"long": ("main", "long"), "short": ("main", "short"),
               "large_long": ("large", "long"), "large_short": ("large", "short")}


@dataclass
class Plan:
    job: str
    large_job: str | None
    data_fingerprint: str
    items: list[EvalItem]
    eval_set: str
    eval_removed: int          # items dropped for sharing an n-gram with a training row
    mixtures: list[Mixture]
    available: dict[str, int]  # problems with a candidate, per part


def _job(con, ref: str, field: str, task: str) -> str:
    from stores.stats import UnknownJob

    try:
        job = resolve_job(con, ref)
    except UnknownJob as err:
        raise JobError(f"{field}: {err}") from None
    from factory.plugins import PluginError
    from factory.recipes.registry import find_recipe

    recipe = job_recipe(con, job)
    try:
        readable = find_recipe(recipe).distill_task == task
    except PluginError:
        readable = False
    if not readable:
        raise JobError(f"{field}: {ref} is a {recipe} job; a {task} distillation reads a job whose recipe "
                       f"declares distill_task = {task!r} (math: math; stories: tinystories)")
    return job


def _warn_if_uncurated(con, spec: DistillSpec, jobs: dict[str, str | None]) -> None:
    """Candidates from the accepted view of a job never curated hold near duplicates and
    benchmark overlaps: say so (UncuratedWarning) before minutes of training on them."""
    if spec.source.use != "accepted":
        return
    refs = {"job": spec.source.job, "large_job": spec.source.large_job}
    for field, job in jobs.items():
        if job is not None:
            warn_if_uncurated(con, job, refs[field])


def _math_candidates(con, spec: DistillSpec, jobs: dict[str, str | None], parts: set[str]) -> dict:
    by_job = {}
    for which in {PART_SOURCE[p][0] for p in parts}:
        by_job[which] = solution_candidates(con, jobs[which], spec.source.use, spec.source.require)
    candidates: dict[str, dict[str, list[Candidate]]] = {p: {} for p in parts}
    for part in parts:
        which, kind = PART_SOURCE[part]
        for row in by_job[which]:
            if row["kind"] != kind:
                continue
            c = Candidate(row["solution_id"], row["sample_id"], row["content_hash"], math_prompt(row["question"]),
                          math_target(row["solution"]))
            candidates[part].setdefault(c.problem, []).append(c)
    return candidates


def plan_math(con, spec: DistillSpec) -> Plan:
    job = _job(con, spec.source.job, "source.job", "math")
    large = _job(con, spec.source.large_job, "source.large_job", "math") if spec.source.large_job else None
    _warn_if_uncurated(con, spec, {"job": job, "large_job": large})
    specs = spec.mixture_specs()
    parts = {p for m in specs for p in m.parts}
    candidates = _math_candidates(con, spec, {"main": job, "large": large}, parts)
    ev = spec.evaluation
    held: list[dict] = []
    if ev.source == "held_out":
        problems = reference_problems(con, job)
        if len(problems) <= ev.problems:
            raise JobError(f"evaluation.problems: {ev.problems} held-out problems asked, but job {spec.source.job} "
                           f"has {len(problems)} problems with a trusted answer; lower it or use source builtin/file")
        held = held_out(problems, ev.problems, ev.seed)
        for part in candidates.values():  # held-out problems never train
            for p in held:
                part.pop(p["content_hash"], None)
    pool = problem_pool(candidates, parts)
    available = {p: len(c) for p, c in candidates.items()}
    rows = rows_to_use(spec.rows, pool, available, [m.name for m in specs])
    problems = choose_problems(pool, rows, spec.training.seed)
    mixtures = [build_mixture(m.name, m.parts, candidates, problems, spec.training.seed) for m in specs]
    chosen = set(problems)
    texts = [c.prompt + " " + c.target for part in candidates.values() for key, cs in part.items() if key in chosen
             for c in cs]
    overlap = OverlapFilter(texts, ev.overlap_ngram)
    if ev.source == "held_out":
        items = [EvalItem(p["sample_id"], p["question"], p["answer"]) for p in held]
        kept = [i for i in items if not overlap.overlaps(i.question)]
        items, removed = kept, len(items) - len(kept)
    elif ev.source == "builtin":
        items, removed = builtin_items(ev.problems, ev.seed, ev.max_steps, overlap)
    else:
        items, removed = file_items(ev.file, ev.problems, ev.seed, overlap)
    if not items:
        raise JobError(f"evaluation: every one of {ev.problems} items shares a {ev.overlap_ngram}-gram with the "
                       "training rows; nothing to evaluate on")
    pool_ids = sorted(c.source_id for part in candidates.values() for key, cs in part.items() if key in chosen
                      for c in cs)
    data = digest("data", job, large, spec.source.use, spec.source.require, pool_ids)
    return Plan(job, large, data, items, digest("eval", [(i.item_id, i.question, i.answer) for i in items]),
                removed, mixtures, available)


def plan_stories(con, spec: DistillSpec) -> Plan:
    from factory.distill.stories import story_items

    job = _job(con, spec.source.job, "source.job", "stories")
    _warn_if_uncurated(con, spec, {"job": job})
    stories = story_candidates(con, job, spec.source.use)
    # Held out from the accepted stories whatever `use` trains on, so that a student of every
    # story and one of the accepted ones are measured on the same held-out items (issue 12).
    accepted = stories if spec.source.use == "accepted" else story_candidates(con, job, "accepted")
    ev = spec.evaluation
    if len(accepted) <= ev.problems:
        raise JobError(f"evaluation.problems: {ev.problems} held-out stories asked, but job {spec.source.job} has "
                       f"{len(accepted)} accepted stories")
    items = story_items(accepted, ev.problems, ev.seed, ev.grading.prompt_words)
    held = {i.item_id for i in items}
    held_hashes = {s["content_hash"] for s in accepted if s["sample_id"] in held}
    candidates = {"story": {s["content_hash"]: [Candidate(s["sample_id"], s["sample_id"], s["content_hash"], "",
                                                          s["text"])]
                            for s in stories if s["sample_id"] not in held and s["content_hash"] not in held_hashes}}
    pool = problem_pool(candidates, {"story"})
    rows = rows_to_use(spec.rows, pool, {"story": len(pool)}, ["all"])
    problems = choose_problems(pool, rows, spec.training.seed)
    mixtures = [build_mixture("all", {"story": 1.0}, candidates, problems, spec.training.seed)]
    data = digest("data", job, spec.source.use, sorted(c[0].source_id for c in candidates["story"].values()))
    return Plan(job, None, data, items, digest("eval", [(i.item_id, i.question) for i in items]), 0, mixtures,
                {"story": len(pool)})
