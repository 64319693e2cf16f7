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


# Verdict stages that are gates (rules before review) rather than reviewers or the adjudicator.
REVIEW_STAGES = ("reviewers", "adjudicator")


def gates(rule: dict, signals: dict, verdict: dict | None, generated: bool) -> list[dict]:
    """Each gate before review, and what it said about this sample: reject (it decided the
    verdict), pass, keep (truncated, kept by the recipe's policy), off or not measured."""
    decided = verdict["stage"] if verdict and verdict["stage"] not in REVIEW_STAGES else None
    out = []
    if generated:
        truncated = signals.get("truncated")
        result = "pass" if truncated is None else ("reject" if decided == "truncated" else "keep")
        out.append({"gate": "truncated", "result": result, "policy": rule.get("truncated", "reject"),
                    "detail": (truncated or {}).get("details")})
    minimum, likelihood = rule.get("min_likelihood"), signals.get("likelihood")
    result = ("not measured" if likelihood is None else "off" if minimum is None
              else "reject" if decided == "likelihood" else "pass")
    out.append({"gate": "likelihood", "result": result, "min_likelihood": minimum,
                "value": None if likelihood is None else likelihood["value"]})
    if decided is not None and decided not in ("truncated", "likelihood"):
        out.append({"gate": decided, "result": verdict["decision"], "detail": verdict["reason"]})
    return out


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
    signals = {r["signal"]: r for r in sections["signals"]}
    verdict = (sections["verdict"] or [None])[0]
    likelihood = signals.get("likelihood")
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
        "verdict": verdict,
        "likelihood": None if likelihood is None else {
            "mean_logprob": likelihood["value"], "n_tokens": (likelihood["details"] or {}).get("n_tokens"),
            "model": likelihood["model"]},
        "signals": sections["signals"],
        "gates": gates(_json(rows["decision_rule"]) or {}, signals, verdict, sample["template"] is not None),
        "verification": (sections["verification"] or [None])[0],
        "solutions": sections["solutions"],
        "dedup": sections["dedup"],
        "contamination": sections["contamination"],
        "outside_duplicate": (sections["outside_duplicate"] or [None])[0],
        "quality": (sections["quality"] or [None])[0],
        "calls": [{**c, "messages": _json(c["messages"])} for c in rows["calls"]],
        "in_accepted_view": rows["in_accepted_view"],
    }
