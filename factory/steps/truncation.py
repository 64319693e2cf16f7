"""RejectTruncated: a generation that stopped at max_tokens (finish_reason `length`) is never
accepted silently. The recipe declares what happens (Recipe.truncated, recorded in the
decision rule as decision.truncated): `reject` (the default) rejects it with stage and
reason `truncated` before any review is paid for; `keep` lets it go on. Either way a
`truncated` row in `signals` says so (factory explain shows it).

finish_reason is read from the completions cache by the sample's request key (the Caller
saves every completion with it before the step after Generate runs), so a rerun over
cached completions decides the same way.
"""
from __future__ import annotations

from factory.steps.context import Context, add_verdict, signal_row
from factory.steps.state import BatchState


class RejectTruncated:
    reads, writes = ("samples",), ("samples",)

    def run(self, ctx: Context, state: BatchState) -> None:
        policy = ctx.spec.decision.truncated
        keys = {i: row["request_key"] for i, row in state.samples.items() if row.get("request_key")}
        found = ctx.store.cached(list(keys.values()))
        rows = []
        for i, key in sorted(keys.items()):
            completion = found.get(key)
            if completion is None or completion["finish_reason"] != "length":
                continue
            row = state.samples[i]
            tokens = completion["completion_tokens"]
            rows.append(signal_row(ctx, row["sample_id"], "truncated", 1.0,
                                   {"finish_reason": "length", "completion_tokens": tokens, "policy": policy}, row))
            if policy == "reject":
                add_verdict(ctx, state.batch, row["sample_id"], "reject", "truncated",
                            f"truncated: the generator stopped at max_tokens ({tokens} tokens), the text is cut off")
                del state.samples[i]
        for row in rows:  # committed with the batch's other rows
            state.batch.add("signals", row)
