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

ROWS_SQL = """
SELECT a.sample_id, a.seed_index, a.text, se.payload AS seed, a.payload, a.quality_score,
       (SELECT avg(overall) FROM reviews r WHERE r.sample_id = a.sample_id) AS review_mean,
       v.reference_answer AS answer,
       (SELECT text FROM solutions s WHERE s.sample_id = a.sample_id AND s.kind = 'program' AND s.correct
        ORDER BY attempt LIMIT 1) AS program,
       (SELECT text FROM solutions s WHERE s.sample_id = a.sample_id AND s.kind = 'long' AND s.correct
        ORDER BY attempt LIMIT 1) AS long_solution,
       (SELECT text FROM solutions s WHERE s.sample_id = a.sample_id AND s.kind = 'short' AND s.correct
        ORDER BY attempt LIMIT 1) AS short_solution
FROM accepted a JOIN seeds se USING (seed_id) LEFT JOIN verifications v USING (sample_id)
WHERE a.job = ? ORDER BY a.seed_index
"""


def _lineage(con, job: str) -> dict:
    models = [r[0] for r in con.execute(
        """SELECT DISTINCT model::VARCHAR FROM (SELECT model FROM samples WHERE job = ? UNION ALL
           SELECT model FROM reviews WHERE job = ? UNION ALL SELECT model FROM solutions WHERE job = ?)
           WHERE model IS NOT NULL ORDER BY 1""", [job] * 3).fetchall()]
    templates = [r[0] for r in con.execute(
        """SELECT DISTINCT template || coalesce(' (sha256 ' || template_sha256 || ')', '') FROM (
             SELECT template, template_sha256 FROM samples WHERE job = ? UNION ALL
             SELECT template, template_sha256 FROM reviews WHERE job = ? UNION ALL
             SELECT template, template_sha256 FROM verdicts WHERE job = ? UNION ALL
             SELECT template, template_sha256 FROM solutions WHERE job = ?)
           WHERE template IS NOT NULL ORDER BY 1""", [job] * 4).fetchall()]
    spec = json.loads(con.execute("SELECT spec FROM jobs WHERE fingerprint = ?", [job]).fetchone()[0])
    return {"models": [json.loads(m) for m in models], "templates": templates, "spec": spec}


def dataset_card(stats: dict, lineage: dict, rows: int, fmt: str) -> str:
    f = stats["funnel"]
    return f"""---
pretty_name: {stats['name']}
size_categories: [n<1K]
tags: [synthetic, factory, {stats['recipe']}]
---
# {stats['name']}

Synthetic {stats['recipe']} data made by factory: a Generator wrote each sample, Reviewers
scored it, the decision rule `{json.dumps(stats['decision_rule'], sort_keys=True)}` (and an
Adjudicator where reviewers disagreed) decided, and curation removed duplicates and
contaminated samples. {rows} rows, format `{fmt}`.

## Funnel
| stage | rows |
|---|---|
""" + "\n".join(f"| {k} | {f[k]} |" for k in ("seeds", "generated", "reviewed", "adjudicated", "accepted",
                                                 "rejected", "dropped")) + f"""
| exported (accepted, deduplicated, not contaminated) | {rows} |

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
    frame = con.execute(ROWS_SQL, [stats["job"]]).df()
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
        (tmp / "README.md").write_text(dataset_card(stats, _lineage(con, stats["job"]), len(frame), fmt))
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"rows": len(frame), "path": str(out_dir), "format": fmt}
