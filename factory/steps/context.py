"""What every step of a batch shares: the job, its bound roles, the caller (cache, budget,
executor), the store (read-only use: exact dedup lookups), the recipe; and the two row
helpers every step uses: a drop, a verdict, a signal, a gate (a signal whose verdicts
`factory stats` counts), each one call that writes the row with its lineage."""
from __future__ import annotations

from dataclasses import dataclass, replace

from factory.calls import BoundRole, Caller
from factory.keys import digest, request_seed, seed_id
from roles import Drop
from stores import BatchRows
from stores.insert import stored_value as stored_form

LINEAGE_FIELDS = ("role", "template", "template_sha256", "role_version", "model", "sampling", "request_seed",
                  "request_key", "prompt_tokens", "completion_tokens", "seconds", "versions")
NO_LINEAGE = dict.fromkeys(LINEAGE_FIELDS)


@dataclass
class Call:
    """One role call's outcome: the parsed result (or a Drop) and its lineage."""

    index: int
    slot: int
    parsed: object
    lineage: dict


@dataclass
class Context:
    spec: object          # JobSpec
    job: str              # the job's fingerprint
    bound: dict[str, BoundRole]
    caller: Caller
    recipe: object = None  # the Recipe instance
    store: object = None   # the Store (steps read from it; only the pipeline writes)

    def call(self, role: str, items: list[tuple[int, int, dict]], exclude: dict[int, dict] | None = None) -> list[Call]:
        """items: (seed index, slot, template variables). The slot tells apart several calls
        of one role for one seed (reviewer k, program attempt k) in the request seed.
        exclude: seed index -> the identity of the model that wrote the sample (pools)."""
        if not items:
            return []
        bound = self.bound[role]
        exclude = exclude or {}
        requests = [bound.request(v, request_seed(self.spec.seed, i, role, slot), i, slot, exclude.get(i))
                    for i, slot, v in items]
        # Parse what the cache holds (text UTF-8 cannot hold is stored escaped), not what
        # arrived: a fresh completion and its cached copy on a rerun then give the same rows.
        completions = [replace(c, text=stored_form(c.text)) for c in self.caller.run(bound, requests)]
        return [Call(i, slot, bound.parse(v, c), bound.lineage(r, c))
                for (i, slot, v), r, c in zip(items, requests, completions)]


def add_drop(ctx: Context, batch: BatchRows, index: int, role: str, drop: Drop, lineage: dict | None = None,
             sample: str | None = None, slot: int | None = None) -> None:
    batch.add("drops", {"drop_id": digest("drop", ctx.job, index, role, slot), "job": ctx.job,
                        "seed_id": seed_id(ctx.job, index), "sample_id": sample,
                        "reviewer_index": slot, "reason": drop.reason, "raw_text": drop.raw,
                        **(lineage or NO_LINEAGE), "role": role})


def add_verdict(ctx: Context, batch: BatchRows, sample: str, decision: str, stage: str, reason: str,
                mean=None, spread=None, n_reviews: int = 0, lineage: dict | None = None) -> None:
    batch.add("verdicts", {"sample_id": sample, "job": ctx.job, "decision": decision, "stage": stage,
                           "reason": reason, "mean_score": mean, "spread": spread, "n_reviews": n_reviews,
                           **(lineage or NO_LINEAGE)})


def signal_row(ctx: Context, sample: str | None, name: str, value: float, details: dict | None = None,
               lineage: dict | None = None, **fields) -> dict:
    """A `signals` row: the sample's measure `name` = value, with the lineage of what made it
    (LINEAGE_FIELDS taken from `lineage`, e.g. the sample row; the rest null) and any of
    those fields given by name (model, request_key, role, ...)."""
    taken = {k: (lineage or {}).get(k) for k in LINEAGE_FIELDS}
    return {"sample_id": sample, "job": ctx.job, "signal": name, "value": value, "details": details,
            **taken, **fields}


def add_signal(ctx: Context, batch: BatchRows, sample: str, name: str, value: float, details: dict | None = None,
               lineage: dict | None = None, **fields) -> None:
    """One `signals` row (signal_row) added to the batch: `factory stats` summarizes it
    (samples, mean, range) and `factory explain` shows it."""
    batch.add("signals", signal_row(ctx, sample, name, value, details, lineage, **fields))


def add_gate(ctx: Context, state, index: int, name: str, passed: bool, reason: str, value: float | None = None,
             details: dict | None = None) -> bool:
    """A gate on the sample in play at seed `index`: its signal row (value: 1.0 passed, 0.0
    failed, unless given; lineage: the sample's generation) and, when it failed, a reject
    verdict of stage `name` (so `factory stats` counts the verdicts the gate decided) and the
    sample leaves play. Returns passed."""
    row = state.samples[index]
    add_signal(ctx, state.batch, row["sample_id"], name, float(passed) if value is None else value,
               {**(details or {}), "passed": passed, **({} if passed else {"reason": reason})}, row)
    if not passed:
        add_verdict(ctx, state.batch, row["sample_id"], "reject", name, reason)
        del state.samples[index]
        state.to_review.pop(index, None)
    return passed
