"""`factory explain SAMPLE_ID`: the whole story of one sample, from its seed to the
accepted view."""
from __future__ import annotations

import json

from stores.explain import SAMPLE_SECTIONS, sample_rows, samples_starting_with


def _json(v):
    if isinstance(v, str) and v[:1] in "{[":
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v
    return v


def _clean(rows: list[dict]) -> list[dict]:
    return [{k: _json(v) for k, v in r.items()} for r in rows]


def explain(con, sample_id: str) -> dict:
    matches = samples_starting_with(con, sample_id)
    if len(matches) != 1:
        raise LookupError(f"no sample {sample_id!r}" if not matches else f"{sample_id!r} matches {len(matches)} samples")
    sid = matches[0]
    rows = sample_rows(con, sid)
    sample = _clean([rows["sample"]])[0]
    lineage = ("template", "template_sha256", "role_version", "model", "sampling", "request_seed", "request_key",
               "prompt_tokens", "completion_tokens", "seconds")
    sections = {name: _clean(rows[name]) for name in SAMPLE_SECTIONS}
    return {
        "sample_id": sid,
        "job": rows["job"],
        "seed": _clean([rows["seed"]])[0],
        "generation": {k: sample[k] for k in lineage},
        "text": sample["text"],
        "payload": sample["payload"],
        "rule_checks": sample["rule_checks"],
        "exact_duplicate_of": sample["duplicate_of"],
        "reviews": sections["reviews"],
        "dropped_outputs": sections["dropped_outputs"],
        "verdict": (sections["verdict"] or [None])[0],
        "verification": (sections["verification"] or [None])[0],
        "solutions": sections["solutions"],
        "dedup": sections["dedup"],
        "contamination": sections["contamination"],
        "quality": (sections["quality"] or [None])[0],
        "in_accepted_view": rows["in_accepted_view"],
    }
