"""`factory export`: a job's accepted view as Parquet, JSONL or a Hugging Face dataset
directory, each with a dataset card (README.md) holding stats, lineage and the job.
Written to a temporary directory and renamed into place: never half-written."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from stores.curated import warn_if_uncurated
from stores.stats import job_stats

FORMATS = ("parquet", "jsonl", "hf")

# Hugging Face's size categories, by row count.
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"))


def size_category(rows: int) -> str:
    return next((name for limit, name in SIZE_CATEGORIES if rows < limit), "n>10M")


def records(recipe, rows: list[dict]) -> list[dict]:
    """Each accepted row -> the columns every export has + the recipe's own columns
    (text; chat `messages`; prompt/chosen/rejected; math's question and solutions)."""
    return [{"sample_id": r["sample_id"], "seed_index": r["seed_index"], **recipe.export_record(r),
             "quality_score": r["quality_score"], "review_mean": r["review_mean"]} for r in rows]


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


def dataset_card(stats: dict, lineage: dict, rows: int, fmt: str, columns: list[str] | None = None,
                 curation: dict | None = None) -> str:
    f = stats["funnel"]
    return f"""---
pretty_name: {stats['name']}
size_categories: [{size_category(rows)}]
tags: [synthetic, factory, {stats['recipe']}]
---
# {stats['name']}

Synthetic {stats['recipe']} data made by factory: a Generator wrote each sample, Reviewers
scored it, the decision rule `{json.dumps(stats['decision_rule'], sort_keys=True)}` (and an
Adjudicator where reviewers disagreed) decided. {_curation_text(curation)}{_scripted_text(stats)}
{rows} rows, format `{fmt}`, columns: {', '.join(f'`{c}`' for c in columns or [])}.

## Funnel
| stage | rows |
|---|---|
""" + "\n".join(f"| {k} | {f[k]} |" for k in ("seeds", "generated", "reviewed", "adjudicated", "accepted",
                                                 "rejected", "dropped")) + f"""
| exported (the accepted view) | {rows} |

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
{json.dumps(lineage['spec'], indent=2, sort_keys=True)}
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

    import pandas as pd

    recipe = find_recipe(stats["recipe"])
    rows = records(recipe, accepted_rows(con, stats["job"]))
    frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame(columns=["sample_id", "seed_index"])
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
