"""`factory label import FILE` and `factory export --labels`: human labels in and out as
JSONL or CSV. A JSONL row: {"sample_id", "labeller", "decision": "accept"|"reject",
"scores": {"axis": 1-10, ...}, "note"}; a CSV has the same columns, with one `score_<axis>`
column per axis (or a `scores` column holding the JSON object). What export writes, import
reads back. A bad row is one line naming the file and row; nothing is stored then.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from stores.labels import Label, LabelError, checked, put_labels, read_labels

SCORE_PREFIX = "score_"
FORMATS = ("jsonl", "csv")


def _row_label(row: dict, where: str, labeller: str | None) -> Label:
    scores = row.get("scores") or {}
    if isinstance(scores, str):
        try:
            scores = json.loads(scores)
        except json.JSONDecodeError:
            raise LabelError(f"{where}: scores must be a JSON object (got {scores!r})") from None
    if not isinstance(scores, dict):
        raise LabelError(f"{where}: scores must be an object of axis -> 1-10 (got {scores!r})")
    scores = {**scores, **{k[len(SCORE_PREFIX):]: v for k, v in row.items() if k.startswith(SCORE_PREFIX)}}
    return checked(row.get("sample_id"), row.get("labeller") or labeller, row.get("decision"), scores,
                   row.get("note"), where)


def _json_object(line: str, where: str) -> dict:
    try:
        row = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as e:
        raise LabelError(f"{where}: not JSON ({getattr(e, 'msg', 'nested too deeply')})") from None
    if not isinstance(row, dict):
        raise LabelError(f"{where}: expected an object, got {type(row).__name__}")
    return row


def read_label_file(path: str | Path, labeller: str | None = None) -> list[Label]:
    """The labels of a .jsonl or .csv file; labeller: for rows that name none."""
    path = Path(path)
    if not path.is_file():
        raise LabelError(f"no label file at {path}")
    kind = path.suffix.lower().lstrip(".")
    if kind not in ("jsonl", "csv", "json"):
        raise LabelError(f"{path}: expected a .jsonl or .csv file of labels (got {path.suffix or 'no suffix'})")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise LabelError(f"{path}: not UTF-8 text (byte at offset {e.start})") from None
    if kind == "csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if not reader.fieldnames or "sample_id" not in reader.fieldnames:
            raise LabelError(f"{path}: a CSV of labels needs a header with sample_id, decision (got "
                             f"{', '.join(reader.fieldnames or []) or 'no header'})")
        labels = [_row_label(row, f"{path} line {n}", labeller) for n, row in enumerate(reader, start=2)]
    else:
        labels = [_row_label(_json_object(line, f"{path} line {n}"), f"{path} line {n}", labeller)
                  for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not labels:
        raise LabelError(f"{path}: no labels in the file")
    return labels


def import_labels(db: str | Path, path: str | Path, labeller: str | None = None) -> int:
    """Every label of the file into db's labels table, or none (LabelError). Rows written."""
    return put_labels(db, read_label_file(path, labeller), source=Path(path).name)


def export_labels(con, job: str | None, out: str | Path, format: str = "jsonl") -> dict:
    """The labels (of job, or all) to OUT/labels.<format>; OUT is created if missing and must
    not hold a labels file already. {"rows", "format", "path"}."""
    if format not in FORMATS:
        raise LabelError(f"--format: labels export as jsonl or csv (got {format!r})")
    out = Path(out)
    target = out / f"labels.{format}"
    if target.exists():
        raise LabelError(f"{target} exists: choose another -o directory")
    rows = read_labels(con, job)
    out.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8", newline="") as f:
        if format == "jsonl":
            for r in rows:
                f.write(json.dumps({**r, "labelled_at": str(r["labelled_at"])}, sort_keys=True) + "\n")
        else:
            axes = sorted({a for r in rows for a in r["scores"]})
            columns = ["sample_id", "job", "labeller", "decision", "note", "source", "labelled_at",
                       *[SCORE_PREFIX + a for a in axes]]
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            for r in rows:
                writer.writerow({**{c: r[c] for c in columns[:7]}, **{SCORE_PREFIX + a: v for a, v in r["scores"].items()}})
    return {"rows": len(rows), "format": format, "path": str(target)}
