"""Math with a verifier: (new problem) -> k programs + a long and a short solution ->
sandbox -> verification. Only verified samples go on to review; every attempt is a
`solutions` row, every problem a `verifications` row."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from factory.job_errors import JobError
from factory.keys import content_hash, digest, sample_id, seed_id
from factory.sandbox import run_program
from factory.steps.context import NO_LINEAGE, Context, add_drop, add_verdict
from factory.steps.state import BatchState
from factory.verify.verifier import canonical_number, verify
from roles import Drop
from roles.answers import answers_match

# Each sandbox run is its own short-lived process (~50 ms); one per core at a time.
SANDBOX_WORKERS = 2


class SuggestHarder:
    """Orca-Math's harder variants, first half (it makes the seed rows): each seed is an
    accepted problem of the parent job; the suggester says how to make it harder. The seed
    row records the parent, the suggestion and the suggester's lineage (no other row holds
    a usable suggestion); an unusable one is a drop row. WriteProblems("editor") rewrites."""

    role = "suggester"

    def run(self, ctx: Context, state: BatchState) -> None:
        written, read = Path(ctx.store.path).resolve(), Path(ctx.recipe.parents_db).resolve()
        if written != read:  # a parent_sample_id must name a sample of the database it is in
            raise JobError(f"options.parent_job: the parent problems were read from the job's db {read}, but this "
                           f"run writes to {written}; set `db: {written}` in the job instead of passing --db")
        parents = {i: ctx.recipe.make_seed(i) for i in state.indices}
        calls = ctx.call(self.role, [(i, 0, {"parent_question": p["parent_question"]}) for i, p in parents.items()])
        for call in calls:
            usable = not isinstance(call.parsed, Drop)
            seed = {**parents[call.index], "suggestion": call.parsed.text if usable else None,
                    "suggester": call.lineage if usable else None}
            state.batch.add("seeds", {"seed_id": seed_id(ctx.job, call.index), "job": ctx.job,
                                      "seed_index": call.index, "payload": seed})
            if usable:
                state.seeds[call.index] = seed
            else:
                add_drop(ctx, state.batch, call.index, self.role, call.parsed, call.lineage)


class WriteProblems:
    """Seeds with a question pass through; 'generated' seeds get a new problem written (the
    problem_writer), 'harder' seeds their parent rewritten after the suggestion (the editor)."""

    def __init__(self, role: str = "problem_writer"):
        self.role = role

    def run(self, ctx: Context, state: BatchState) -> None:
        ready = {i: s for i, s in state.seeds.items() if s["question"] is not None}
        todo = [(i, 0, s) for i, s in state.seeds.items() if s["question"] is None]
        for call in ctx.call(self.role, todo):
            if isinstance(call.parsed, Drop):
                add_drop(ctx, state.batch, call.index, self.role, call.parsed, call.lineage)
            else:
                ready[call.index] = {**state.seeds[call.index], "question": call.parsed.question,
                                     "lineage": call.lineage}
        for i in sorted(ready):
            p = ready[i]
            state.made[i] = {"sample_id": sample_id(ctx.job, i), "job": ctx.job, "seed_id": seed_id(ctx.job, i),
                             "seed_index": i, "text": p["question"], "content_hash": content_hash(p["question"]),
                             "duplicate_of": None, "rule_checks": None,
                             "payload": {"ground_truth": p["ground_truth"], "origin": p["origin"]},
                             **p.get("lineage", NO_LINEAGE)}


class SolveAndVerify:
    """k programs (run in the sandbox), a long and a short solution per problem; the
    verifier's verdict; verified problems go on to review."""

    def run(self, ctx: Context, state: BatchState) -> None:
        rows, k = state.samples, ctx.recipe.options.programs
        programs = ctx.call("generator", [(i, a, {"question": r["text"]}) for i, r in rows.items() for a in range(k)])
        longs = {c.index: c for c in ctx.call("long_solver", [(i, 0, {"question": r["text"]}) for i, r in rows.items()])}
        shorts = {c.index: c for c in ctx.call("short_solver", [(i, 0, {"question": r["text"]})
                                                                for i, r in rows.items()])}
        code = [c.parsed.code if not isinstance(c.parsed, Drop) else None for c in programs]
        with ThreadPoolExecutor(SANDBOX_WORKERS) as pool:
            results = list(pool.map(lambda src: run_program(src) if src else None, code))
        solutions, values = [], {i: [] for i in rows}
        for call, result in zip(programs, results):
            sample = rows[call.index]["sample_id"]
            if result is None:
                solutions.append(self._solution(ctx, sample, "program", call, call.parsed.raw, None, "unparseable",
                                                call.parsed.reason))
                self._drop(ctx, state, call, "generator", sample)
                values[call.index].append(None)
                continue
            value = canonical_number(result.value) if result.status == "ok" else None
            reason = result.reason or ("" if value is not None else f"returned a non-number: {result.value!r}"[:200])
            solutions.append(self._solution(ctx, sample, "program", call, call.parsed.code, value, result.status,
                                            reason))
            values[call.index].append(value)
        reference = {}
        for i, row in rows.items():
            answers = {}
            for kind, call in (("long", longs[i]), ("short", shorts[i])):
                if isinstance(call.parsed, Drop):
                    solutions.append(self._solution(ctx, row["sample_id"], kind, call, call.parsed.raw, None,
                                                    "unparseable", call.parsed.reason))
                    self._drop(ctx, state, call, f"{kind}_solver", row["sample_id"])
                    answers[kind] = None
                else:
                    solutions.append(self._solution(ctx, row["sample_id"], kind, call, call.parsed.text,
                                                    call.parsed.answer, "ok", ""))
                    answers[kind] = call.parsed.answer
            v = verify(values[i], row["payload"]["ground_truth"], answers["long"], answers["short"])
            reference[row["sample_id"]] = v.reference_answer
            state.batch.add("verifications", {"sample_id": row["sample_id"], "job": ctx.job, **v.__dict__})
            if not v.verified:
                add_verdict(ctx, state.batch, row["sample_id"], "reject", "verifier", v.reason)
            else:
                state.to_review[i] = (row["sample_id"], {"question": row["text"],
                                                         "reference_answer": v.reference_answer})
        for s in solutions:  # correct is known once the problem is verified: rows are added complete
            ref = reference.get(s["sample_id"])
            correct = None if ref is None else (s["answer"] is not None and answers_match(s["answer"], ref))
            state.batch.add("solutions", {**s, "correct": correct})

    @staticmethod
    def _drop(ctx: Context, state: BatchState, call, role: str, sample: str) -> None:
        # The attempt, with its lineage and tokens, is the solutions row; the drop row makes
        # the unparseable output visible where every other drop is (no lineage: no double count).
        add_drop(ctx, state.batch, call.index, role, call.parsed, None, sample, call.slot)

    @staticmethod
    def _solution(ctx: Context, sample, kind, call, text, answer, status, reason) -> dict:
        return {"solution_id": digest("solution", sample, kind, call.slot), "job": ctx.job, "sample_id": sample,
                "kind": kind, "attempt": call.slot, "text": text, "answer": answer, "status": status,
                "status_reason": reason, "correct": None, **call.lineage}
