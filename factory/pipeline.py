"""One job, end to end: seeds -> Generator -> Reviewers -> decision rule -> Adjudicator ->
rows in DuckDB, a batch at a time, resumable at any point."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from factory.backends import model_identity
from factory.calls import BoundRole, Caller
from factory.decide import decide
from factory.executors import make_executor
from factory.keys import content_hash, digest, request_seed, sample_id, seed_id
from factory.recipes import tinystories
from factory.spec import JobSpec
from roles import Adjudicator, Drop, Generator, Reviewer
from stores import BatchRows, Store


@dataclass
class RunResult:
    job: str
    db: str
    seeds_done_before: int
    seeds_processed: int
    model_calls: int
    counts: dict = field(default_factory=dict)


class NullProgress:
    def start(self, total: int, done: int) -> None: ...
    def tokens(self, n: int) -> None: ...
    def batch(self, samples: int, outcomes: dict) -> None: ...
    def stop(self) -> None: ...


def bind_roles(spec: JobSpec) -> dict[str, BoundRole]:
    """Resolve templates and model identities before anything touches the database, so a
    bad template or a missing model package fails with nothing written."""
    roles = {"generator": Generator, "reviewer": Reviewer, "adjudicator": Adjudicator}
    bound = {}
    for name, cls in roles.items():
        role_spec = getattr(spec.roles, name)
        identity = model_identity(role_spec.backend, role_spec.model).as_dict()
        bound[name] = BoundRole(cls(role_spec.template), role_spec, identity)
    return bound


class TinyStoriesBatch:
    """Turns one batch of seed indices into rows; knows nothing of Ray or DuckDB beyond
    the caller and the store's dedup lookup."""

    def __init__(self, spec: JobSpec, bound: dict[str, BoundRole], caller: Caller, store: Store):
        self.spec, self.bound, self.caller, self.store = spec, bound, caller, store
        self.job = spec.fingerprint

    def run(self, indices: list[int]) -> BatchRows:
        job, spec = self.job, self.spec
        batch = BatchRows(batch_id=digest("batch", job, indices), job=job, seed_indices=indices)
        seeds = {i: tinystories.make_seed(spec.seed, i) for i in indices}
        for i in indices:
            batch.add("seeds", {"seed_id": seed_id(job, i), "job": job, "seed_index": i, "payload": seeds[i]})

        stories = self._generate(batch, seeds)
        unique = self._dedup(batch, stories)
        to_review = {i: s for i, s in unique.items() if not self._vocabulary_reject(batch, i, s)}
        reviews = self._review(batch, seeds, to_review)
        pending = self._decide(batch, to_review, reviews)
        self._adjudicate(batch, pending, reviews)
        return batch

    def _generate(self, batch: BatchRows, seeds: dict) -> dict[int, dict]:
        bound = self.bound["generator"]
        requests = {i: bound.request(seeds[i], request_seed(self.spec.seed, i, "generator")) for i in seeds}
        completions = self.caller.run(bound, list(requests.values()))
        stories = {}
        for (i, request), completion in zip(requests.items(), completions):
            parsed = bound.role.parse(seeds[i], completion.text)
            lineage = bound.lineage(request, completion)
            if isinstance(parsed, Drop):
                batch.add("drops", {"drop_id": digest("drop", self.job, i, "generator"), "job": self.job,
                                    "seed_id": seed_id(self.job, i), "sample_id": None, "role": "generator",
                                    "reviewer_index": None, "reason": parsed.reason, "raw_text": parsed.raw, **lineage})
                continue
            row = {"sample_id": sample_id(self.job, i), "job": self.job, "seed_id": seed_id(self.job, i),
                   "seed_index": i, "text": parsed.text, "content_hash": content_hash(parsed.text),
                   "duplicate_of": None, "rule_checks": tinystories.rule_checks(seeds[i], parsed.text), **lineage}
            stories[i] = {"row": row, "seed": seeds[i]}
        return stories

    def _dedup(self, batch: BatchRows, stories: dict[int, dict]) -> dict[int, dict]:
        seen = self.store.samples_by_hash(self.job, [s["row"]["content_hash"] for s in stories.values()])
        unique = {}
        for i in sorted(stories):
            row = stories[i]["row"]
            first = seen.get(row["content_hash"])
            if first is not None:
                row["duplicate_of"] = first
                self._verdict(batch, row["sample_id"], "reject", "exact_duplicate", f"same text as {first}")
            else:
                seen[row["content_hash"]] = row["sample_id"]
                unique[i] = stories[i]
            batch.add("samples", row)
        return unique

    def _vocabulary_reject(self, batch: BatchRows, i: int, story: dict) -> bool:
        limit = self.spec.decision.max_out_of_vocabulary
        share = story["row"]["rule_checks"]["out_of_vocabulary_share"]
        if limit is None or share <= limit:
            return False
        self._verdict(batch, story["row"]["sample_id"], "reject", "vocabulary",
                      f"{share:.1%} of words outside the vocabulary > {limit:.1%}")
        return True

    def _review(self, batch: BatchRows, seeds: dict, stories: dict[int, dict]) -> dict[int, list]:
        bound = self.bound["reviewer"]
        jobs = []
        for i, story in stories.items():
            variables = {**seeds[i], "story": story["row"]["text"]}
            for r in range(self.spec.reviewers):
                jobs.append((i, r, variables, bound.request(variables, request_seed(self.spec.seed, i, "reviewer", r))))
        completions = self.caller.run(bound, [j[3] for j in jobs])
        reviews: dict[int, list] = {i: [] for i in stories}
        for (i, r, variables, request), completion in zip(jobs, completions):
            parsed = bound.role.parse(variables, completion.text)
            lineage = bound.lineage(request, completion)
            sid = stories[i]["row"]["sample_id"]
            if isinstance(parsed, Drop):
                batch.add("drops", {"drop_id": digest("drop", self.job, i, "reviewer", r), "job": self.job,
                                    "seed_id": seed_id(self.job, i), "sample_id": sid, "role": "reviewer",
                                    "reviewer_index": r, "reason": parsed.reason, "raw_text": parsed.raw, **lineage})
                continue
            reviews[i].append(parsed)
            batch.add("reviews", {"review_id": digest("review", sid, r), "job": self.job, "sample_id": sid,
                                  "reviewer_index": r, **parsed.model_dump(), "overall": parsed.overall, **lineage})
        return reviews

    def _decide(self, batch: BatchRows, stories: dict[int, dict], reviews: dict[int, list]) -> dict[int, dict]:
        rule = self.spec.decision
        pending = {}
        for i, story in stories.items():
            sid = story["row"]["sample_id"]
            if not reviews[i]:
                self._verdict(batch, sid, "drop", "no_valid_reviews", "every review was unparseable")
                continue
            d = decide([r.overall for r in reviews[i]], rule.accept_mean, rule.max_spread, rule.reject_mean)
            if d.outcome == "adjudicate":
                pending[i] = {**story, "decision": d}
            else:
                self._verdict(batch, sid, d.outcome, "reviewers", d.reason, d.mean, d.spread, len(reviews[i]))
        return pending

    def _adjudicate(self, batch: BatchRows, pending: dict[int, dict], reviews: dict[int, list]) -> None:
        if not pending:
            return
        bound = self.bound["adjudicator"]
        jobs = []
        for i, item in pending.items():
            variables = {**item["seed"], "story": item["row"]["text"], "reviews": [r.model_dump() for r in reviews[i]]}
            jobs.append((i, variables, bound.request(variables, request_seed(self.spec.seed, i, "adjudicator"))))
        completions = self.caller.run(bound, [j[2] for j in jobs])
        for (i, variables, request), completion in zip(jobs, completions):
            item, lineage = pending[i], bound.lineage(request, completion)
            sid, d = item["row"]["sample_id"], item["decision"]
            parsed = bound.role.parse(variables, completion.text)
            if isinstance(parsed, Drop):
                batch.add("drops", {"drop_id": digest("drop", self.job, i, "adjudicator"), "job": self.job,
                                    "seed_id": seed_id(self.job, i), "sample_id": sid, "role": "adjudicator",
                                    "reviewer_index": None, "reason": parsed.reason, "raw_text": parsed.raw, **lineage})
                self._verdict(batch, sid, "drop", "adjudicator", f"unparseable verdict: {parsed.reason}",
                              d.mean, d.spread, len(reviews[i]), lineage)
                continue
            self._verdict(batch, sid, parsed.decision, "adjudicator", parsed.reason or f"({d.reason})",
                          d.mean, d.spread, len(reviews[i]), lineage)

    def _verdict(self, batch, sid, decision, stage, reason, mean=None, spread=None, n_reviews=0, lineage=None):
        empty = dict.fromkeys(("template", "template_sha256", "role_version", "model", "sampling", "request_seed",
                               "request_key", "prompt_tokens", "completion_tokens", "seconds"))
        batch.add("verdicts", {"sample_id": sid, "job": self.job, "decision": decision, "stage": stage,
                               "reason": reason, "mean_score": mean, "spread": spread, "n_reviews": n_reviews,
                               **(lineage or empty)})


def outcomes_of(batch: BatchRows) -> dict:
    counts = {"accepted": 0, "rejected": 0, "adjudicated": 0, "dropped": 0}
    for v in batch.rows["verdicts"]:
        counts[{"accept": "accepted", "reject": "rejected", "drop": "dropped"}[v["decision"]]] += 1
        counts["adjudicated"] += v["stage"] == "adjudicator"
    counts["dropped"] += sum(1 for d in batch.rows["drops"] if d["role"] == "generator")
    return counts


def run_job(spec: JobSpec, db: str | Path | None = None, limit: int | None = None, address: str | None = None,
            progress=None) -> RunResult:
    progress = progress or NullProgress()
    bound = bind_roles(spec)  # fails before the database exists if a model or template is missing
    db = Path(db or spec.db)
    target = min(spec.num_samples, limit) if limit is not None else spec.num_samples
    with Store(db) as store:
        job = spec.fingerprint
        store.register_job(job, spec.name, spec.recipe, spec.canonical(), spec.decision.model_dump(), spec.num_samples)
        done = store.done_indices(job)
        todo = [i for i in range(target) if i not in done]
        result = RunResult(job=job, db=str(db), seeds_done_before=len(done & set(range(target))),
                           seeds_processed=0, model_calls=0)
        if not todo:
            return result  # a finished job costs no model call, and starts no engine
        ex = spec.execution
        executor = make_executor(ex.executor, ex.engines, ex.threads_per_engine, address)
        caller = Caller(store, executor, on_completion=lambda c: progress.tokens(c.completion_tokens))
        runner = TinyStoriesBatch(spec, bound, caller, store)
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
