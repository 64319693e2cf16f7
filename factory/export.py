"""`factory export`: a job's accepted view as Parquet, JSONL or a Hugging Face dataset
directory, each with a dataset card (README.md) holding stats, lineage and the job.
Written to a temporary directory and renamed into place: never half-written."""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from stores.curated import warn_if_uncurated
from stores.export_rows import sample_scores, score_names
from stores.stats import job_stats

FORMATS = ("parquet", "jsonl", "hf")

# Hugging Face's size categories, by row count.
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"))


def size_category(rows: int) -> str:
    return next((name for limit, name in SIZE_CATEGORIES if rows < limit), "n>10M")


def records(recipe, rows: list[dict], scores: dict | None = None) -> list[dict]:
    """Each accepted row -> the columns every export has + the recipe's own columns
    (text; chat `messages`; prompt/chosen/rejected; math's question and solutions) + the
    scores (score_columns: per-axis review means, signals, the deciding stage)."""
    scores = scores or {}
    return [{"sample_id": r["sample_id"], "seed_index": r["seed_index"], **recipe.export_record(r),
             "quality_score": _float(r["quality_score"]), "review_mean": _float(r["review_mean"]),
             **scores.get(r["sample_id"], {})} for r in rows]


def _float(v) -> float | None:
    return None if v is None else float(v)


def _column(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")


def score_columns(con, job: str, sample_ids: list[str]) -> tuple[dict[str, dict], list[str]]:
    """sample id -> {review_<axis>: mean of its reviews' numeric axis, signal_<name>: the
    signal's value (expected_scores.k: mean over k), decided_by: the verdict's stage}, and
    the column names in order: every sample gets every column (null where it has none), so
    the schema is the job's, not the rows'."""
    axes, signals, stages = sample_scores(con, job, sample_ids)
    job_axes, job_signals = score_names(con, job)  # the job's every review and signal, not only these rows'
    all_axes = sorted({f"review_{_column(a)}" for a in job_axes} - {"review_mean"})
    all_signals = sorted({f"signal_{_column(n)}" for n in job_signals})
    columns = [*all_axes, *all_signals, "decided_by"]
    out = {sid: dict.fromkeys(columns) for sid in sample_ids}
    for sid, axis, mean in axes:
        if f"review_{_column(axis)}" in all_axes:
            out[sid][f"review_{_column(axis)}"] = _float(mean)
    for sid, name, value in signals:
        out[sid][f"signal_{_column(name)}"] = _float(value)
    for sid, stage in stages:
        out[sid]["decided_by"] = stage
    return out, columns


def _recipe_label(recipe: str) -> str:
    """A file recipe as file.py:Class (the store keeps its absolute path; a card never does)."""
    target, sep, attr = recipe.rpartition(":")
    return f"{Path(target).name}:{attr}" if sep and target.endswith(".py") else recipe


def _curation_text(curation: dict | None) -> str:
    if curation is None:
        return ("Curation has not run on this job (`factory curate`): the rows are the accepted samples "
                "without near or semantic dedup and without decontamination.")
    c = curation["config"]
    benchmarks = ", ".join(b.get("name") or b["path"] for b in c.get("decontaminate", [])) or "none"
    return (f"Curation ran at {curation['curated_at']}: near dedup (Jaccard >= {c['near_threshold']}), "
            f"semantic dedup {'on (cosine >= ' + str(c['semantic_threshold']) + ')' if c['semantic'] else 'off'}, "
            f"decontamination against {benchmarks}. Summary: `{json.dumps(curation['summary'], sort_keys=True)}`")


def _scripted_text(stats: dict) -> str:
    roles = stats.get("scripted_teacher")
    return (f"\nThe {', '.join(roles)} rows were written by the scripted reference teacher from the built-in "
            "generator's worked steps (backend `reference`), not by a model." if roles else "")


def _axes_table(stats: dict) -> str:
    """The rubric's axes over every review of the job: mean, stddev, how many reviews."""
    axes = {k: v for k, v in (stats.get("scores") or {}).items() if "histogram" in v or k == "overall"}
    if not axes:
        return "No reviews (reviewers: 0, or none parsed).\n"
    lines = ["| axis | mean | stddev | reviews |", "|---|---|---|---|"]
    for axis, a in axes.items():
        n = sum(a.get("histogram", {}).values()) if "histogram" in a else "-"
        lines.append(f"| {axis} | {a['mean']} | {a['stddev'] if a['stddev'] is not None else '-'} | {n} |")
    return "\n".join(lines) + "\n"


def _gates_table(stats: dict) -> str:
    """What rejected or dropped samples before and at review (verdict stages), and each
    signal with the verdicts it decided."""
    f = stats["funnel"]
    lines = ["| stage | rejected |", "|---|---|"]
    lines += [f"| {stage} | {n} |" for stage, n in f.get("rejected_by_stage", {}).items()]
    lines += [f"| dropped: {why} | {n} |" for why, n in f.get("drop_reasons", {}).items()]
    signals = stats.get("signals") or {}
    if signals:
        lines += ["", "| signal | samples | mean | min | max | verdicts it decided |", "|---|---|---|---|---|---|"]
        lines += [f"| {name} | {g['samples']} | {g['mean']} | {g['min']} | {g['max']} | {g['verdicts_decided']} |"
                  for name, g in signals.items()]
    return "\n".join(lines) + "\n"


def dataset_card(stats: dict, lineage: dict, rows: int, fmt: str, columns: list[str] | None = None,
                 curation: dict | None = None) -> str:
    f = stats["funnel"]
    recipe = _recipe_label(stats["recipe"])
    spec = {**lineage["spec"], **({"recipe": _recipe_label(lineage["spec"]["recipe"])}
                                  if isinstance(lineage["spec"].get("recipe"), str) else {})}
    return f"""---
pretty_name: {stats['name']}
size_categories: [{size_category(rows)}]
tags: [synthetic, factory, {recipe}]
---
# {stats['name']}

Synthetic {recipe} data made by factory: a Generator wrote each sample, Reviewers
scored it, the decision rule `{json.dumps(stats['decision_rule'], sort_keys=True)}` (and an
Adjudicator where reviewers disagreed) decided. {_curation_text(curation)}{_scripted_text(stats)}
{rows} rows, format `{fmt}`, columns: {', '.join(f'`{c}`' for c in columns or [])}.

## Funnel
| stage | rows |
|---|---|
""" + "\n".join(f"| {k} | {f[k]} |" for k in ("seeds", "generated", "reviewed", "adjudicated", "accepted",
                                                 "rejected", "dropped")) + f"""
| exported (the accepted view) | {rows} |

## Review scores by axis
""" + _axes_table(stats) + """
## Gates and signals
""" + _gates_table(stats) + """
## Lineage
Models:
""" + "\n".join(f"- `{json.dumps(m, sort_keys=True)}`" for m in lineage["models"]) + """

Templates:
""" + "\n".join(f"- `{t}`" for t in lineage["templates"]) + f"""

## Stats
```json
{json.dumps({k: stats[k] for k in ('adjudication_rate', 'acceptance_rate', 'reviewer_agreement', 'verification')}, indent=2)}
```

## Job (fingerprint {stats['job']})
```json
{json.dumps(spec, indent=2, sort_keys=True)}
```
"""


def export(con, job: str, fmt: str, out_dir: str | Path) -> dict:
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not empty: choose a new -o directory")
    stats = job_stats(con, job)
    warn_if_uncurated(con, stats["job"], job or stats["name"])
    from factory.recipes.registry import find_recipe
    from stores.export_rows import accepted_rows, last_curation, lineage
    from stores.jobs import loadable_recipe

    import pandas as pd

    recipe = find_recipe(loadable_recipe(con, stats["recipe"]))
    accepted = accepted_rows(con, stats["job"])
    scores, score_names = score_columns(con, stats["job"], [r["sample_id"] for r in accepted])
    rows = records(recipe, accepted, scores)
    frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame(columns=["sample_id", "seed_index"])
    # Score columns are float64 whether or not a value exists yet (quality_score before
    # `factory curate`: all null, still float64), so a schema never changes with curation.
    for name in ("quality_score", "review_mean", *(c for c in score_names if c != "decided_by")):
        frame[name] = frame[name].astype("float64") if name in frame else pd.Series(dtype="float64")
    if "decided_by" in score_names and "decided_by" not in frame:
        frame["decided_by"] = pd.Series(dtype="object")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir.parent))
    import datasets

    datasets.disable_progress_bars()
    try:
        if fmt == "parquet":
            frame.to_parquet(tmp / "data.parquet", index=False)
        elif fmt == "jsonl":
            frame.to_json(tmp / "data.jsonl", orient="records", lines=True, force_ascii=False)
        else:
            from datasets import Dataset

            Dataset.from_pandas(frame, preserve_index=False).save_to_disk(str(tmp))
        (tmp / "README.md").write_text(dataset_card(stats, lineage(con, stats["job"]), len(frame), fmt,
                                                     list(frame.columns), last_curation(con, stats["job"])))
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"rows": len(frame), "path": str(out_dir), "format": fmt}
