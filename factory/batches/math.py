"""Math with a verifier: (new problem) -> k programs + a long and a short solution ->
sandbox -> verification -> reviews of the problem -> decision. Only verified samples can
be accepted; every attempt stays in the store."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from factory.batches.seeds import make_seeds
from factory.keys import content_hash, digest, sample_id, seed_id
from factory.recipes.math import Math
from factory.sandbox import run_program
from factory.stages import NO_LINEAGE, Context, add_drop, add_verdict, decide_and_adjudicate, review
from factory.verify.answers import answers_match
from factory.verify.verifier import canonical_number, verify
from roles import Drop
from stores import BatchRows, Store

# Each sandbox run is its own short-lived process (~50 ms); one per core at a time.
SANDBOX_WORKERS = 2


class MathBatch:
    def __init__(self, ctx: Context, recipe: Math, store: Store):
        self.ctx, self.recipe, self.store = ctx, recipe, store

    def run(self, indices: list[int]) -> BatchRows:
        ctx = self.ctx
        batch = BatchRows(batch_id=digest("batch", ctx.job, indices), job=ctx.job, seed_indices=indices)
        seeds = make_seeds(ctx, self.recipe, batch, indices)
        problems = self._write_problems(batch, seeds)
        rows = self._samples(batch, problems)
        solved = self._solve(batch, rows)
        to_review = {}
        for i, (row, v) in solved.items():
            batch.add("verifications", {"sample_id": row["sample_id"], "job": ctx.job, **v.__dict__})
            if not v.verified:
                add_verdict(ctx, batch, row["sample_id"], "reject", "verifier", v.reason)
            else:
                to_review[i] = (row["sample_id"], {"question": row["text"], "reference_answer": v.reference_answer})
        decide_and_adjudicate(ctx, batch, to_review, review(ctx, batch, to_review))
        return batch

    def _write_problems(self, batch: BatchRows, seeds: dict[int, dict]) -> dict[int, dict]:
        """Seeds with a question pass through; 'generated' seeds get a new problem written."""
        ready = {i: s for i, s in seeds.items() if s["question"] is not None}
        todo = [(i, 0, s) for i, s in seeds.items() if s["question"] is None]
        for call in self.ctx.call("problem_writer", todo) if todo else []:
            if isinstance(call.parsed, Drop):
                add_drop(self.ctx, batch, call.index, "problem_writer", call.parsed, call.lineage)
            else:
                ready[call.index] = {**seeds[call.index], "question": call.parsed.question, "lineage": call.lineage}
        return ready

    def _samples(self, batch: BatchRows, problems: dict[int, dict]) -> dict[int, dict]:
        ctx, rows = self.ctx, {}
        seen = self.store.samples_by_hash(ctx.job, [content_hash(p["question"]) for p in problems.values()])
        for i in sorted(problems):
            p = problems[i]
            row = {"sample_id": sample_id(ctx.job, i), "job": ctx.job, "seed_id": seed_id(ctx.job, i), "seed_index": i,
                   "text": p["question"], "content_hash": content_hash(p["question"]), "duplicate_of": None,
                   "rule_checks": None, "payload": {"ground_truth": p["ground_truth"], "origin": p["origin"]},
                   **p.get("lineage", NO_LINEAGE)}
            batch.add("samples", row)
            first = seen.get(row["content_hash"])
            if first is not None:
                row["duplicate_of"] = first
                add_verdict(ctx, batch, row["sample_id"], "reject", "exact_duplicate", f"same problem as {first}")
                continue
            seen[row["content_hash"]] = row["sample_id"]
            rows[i] = row
        return rows

    def _solve(self, batch: BatchRows, rows: dict[int, dict]) -> dict[int, tuple]:
        ctx, k = self.ctx, self.recipe.options.programs
        programs = ctx.call("generator", [(i, a, {"question": r["text"]}) for i, r in rows.items() for a in range(k)])
        longs = {c.index: c for c in ctx.call("long_solver", [(i, 0, {"question": r["text"]}) for i, r in rows.items()])}
        shorts = {c.index: c for c in ctx.call("short_solver", [(i, 0, {"question": r["text"]}) for i, r in rows.items()])}
        code = [c.parsed.code if not isinstance(c.parsed, Drop) else None for c in programs]
        with ThreadPoolExecutor(SANDBOX_WORKERS) as pool:
            results = list(pool.map(lambda src: run_program(src) if src else None, code))
        values: dict[int, list] = {i: [] for i in rows}
        for call, result in zip(programs, results):
            sample = rows[call.index]["sample_id"]
            if result is None:
                self._solution(batch, sample, "program", call, call.parsed.raw, None, "unparseable", call.parsed.reason)
                self._drop(batch, call, "generator", sample)
                values[call.index].append(None)
                continue
            value = canonical_number(result.value) if result.status == "ok" else None
            reason = result.reason or ("" if value is not None else f"returned a non-number: {result.value!r}"[:200])
            self._solution(batch, sample, "program", call, call.parsed.code, value, result.status, reason)
            values[call.index].append(value)
        out = {}
        for i, row in rows.items():
            long_answer = self._answer(batch, row["sample_id"], "long", longs[i])
            short_answer = self._answer(batch, row["sample_id"], "short", shorts[i])
            v = verify(values[i], row["payload"]["ground_truth"], long_answer, short_answer)
            out[i] = (row, v)
        self._mark_correct(batch, out)
        return out

    def _answer(self, batch: BatchRows, sample: str, kind: str, call) -> str | None:
        if isinstance(call.parsed, Drop):
            self._solution(batch, sample, kind, call, call.parsed.raw, None, "unparseable", call.parsed.reason)
            self._drop(batch, call, f"{kind}_solver", sample)
            return None
        self._solution(batch, sample, kind, call, call.parsed.text, call.parsed.answer, "ok", "")
        return call.parsed.answer

    def _drop(self, batch, call, role: str, sample: str) -> None:
        # The attempt, with its lineage and tokens, is the solutions row; the drop row makes
        # the unparseable output visible where every other drop is (no lineage: no double count).
        add_drop(self.ctx, batch, call.index, role, call.parsed, None, sample, call.slot)

    def _solution(self, batch, sample, kind, call, text, answer, status, reason) -> None:
        batch.add("solutions", {"solution_id": digest("solution", sample, kind, call.slot), "job": self.ctx.job,
                                "sample_id": sample, "kind": kind, "attempt": call.slot, "text": text,
                                "answer": answer, "status": status, "status_reason": reason, "correct": None,
                                **call.lineage})

    @staticmethod
    def _mark_correct(batch: BatchRows, verified: dict[int, tuple]) -> None:
        reference = {row["sample_id"]: v.reference_answer for row, v in verified.values()}
        for s in batch.rows["solutions"]:
            ref = reference.get(s["sample_id"])
            s["correct"] = None if ref is None else (s["answer"] is not None and answers_match(s["answer"], ref))
