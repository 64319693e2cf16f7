"""Human labels (table `labels`, migration m012): what people said about samples, kept apart
from every model verdict. One row per (sample, labeller); labelling a sample again replaces
that labeller's row. Nothing in the pipeline, curation or the accepted view reads this table.

Writers open the database read-write only for the insert (a browse server does not hold the
file between requests), so a run that starts meanwhile waits at most one short transaction.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from stores.connection import StoreError, open_database
from stores.migrations import migrate
from stores.rows import dict_rows
from stores.insert import insert_rows
from stores.transaction import transaction

DECISIONS = ("accept", "reject")
SCORE_RANGE = (1, 10)  # the rubric's scale; an axis score outside it is refused


class LabelError(ValueError):
    """A label that cannot be stored as given (bad decision, score, unknown sample): one line."""
    exit_code = 2  # bad input: nothing stored (factory/cli.py's codes)


@dataclass
class Label:
    sample_id: str
    labeller: str
    decision: str
    scores: dict[str, float] = field(default_factory=dict)
    note: str | None = None


def checked(sample_id, labeller, decision, scores=None, note=None, where: str = "label") -> Label:
    """A Label from loose values (a form, a file row), or LabelError naming what is wrong."""
    sample_id = str(sample_id or "").strip()
    labeller = str(labeller or "").strip()
    decision = str(decision or "").strip().lower()
    if not sample_id:
        raise LabelError(f"{where}: sample_id is missing")
    if not labeller:
        raise LabelError(f"{where}: labeller is missing (a name; `factory label import --labeller NAME` sets one)")
    if decision not in DECISIONS:
        raise LabelError(f"{where}: decision must be accept or reject (got {decision!r})")
    clean = {}
    for axis, value in (scores or {}).items():
        if value is None or value == "":
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise LabelError(f"{where}: score {axis!r} must be a number 1-10 (got {value!r})") from None
        if not SCORE_RANGE[0] <= number <= SCORE_RANGE[1]:
            raise LabelError(f"{where}: score {axis!r} must be within 1-10 (got {value!r})")
        clean[str(axis)] = number
    note = None if note is None or str(note).strip() == "" else str(note)
    return Label(sample_id, labeller, decision, clean, note)


def has_labels(con) -> bool:
    """False for a database made before m012 and opened read-only (not migrated)."""
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'labels'").fetchone()[0])


def _jobs_of(con, sample_ids: list[str]) -> dict[str, str]:
    rows = con.execute("SELECT sample_id, job FROM samples WHERE sample_id IN (SELECT unnest(?))",
                       [sample_ids]).fetchall()
    return dict(rows)


def put_labels(db: str | Path, labels: list[Label], source: str) -> int:
    """Store labels in db (migrating it first), all or none: every sample must exist. A
    database a run holds raises DatabaseInUse (a StoreError). Returns the rows written."""
    db = Path(db)
    if not db.exists():
        raise LabelError(f"no database at {db}: labels belong to the samples of an existing database")
    con = open_database(db)
    try:
        migrate(con)
        jobs = _jobs_of(con, sorted({lb.sample_id for lb in labels}))
        unknown = sorted({lb.sample_id for lb in labels} - set(jobs))
        if unknown:
            raise LabelError(f"{len(unknown)} label(s) name no sample in {db}: {', '.join(unknown[:3])}"
                             f"{' ...' if len(unknown) > 3 else ''}")
        last = {(lb.sample_id, lb.labeller): lb for lb in labels}  # a file labelling a sample twice: its last row
        rows = [{"sample_id": lb.sample_id, "job": jobs[lb.sample_id], "labeller": lb.labeller,
                 "decision": lb.decision, "scores": json.dumps(lb.scores, sort_keys=True), "note": lb.note,
                 "source": source} for lb in last.values()]
        with transaction(con):
            insert_rows(con, "labels", rows, "ON CONFLICT (sample_id, labeller) DO UPDATE SET decision = excluded.decision, "
                    "scores = excluded.scores, note = excluded.note, source = excluded.source, "
                    "labelled_at = now()")
        return len(rows)
    finally:
        con.close()


def read_labels(con, job: str | None = None, sample_id: str | None = None) -> list[dict]:
    """Labels (scores parsed), oldest first; [] on a database without the table."""
    if not has_labels(con):
        return []
    where, params = [], []
    if job is not None:
        where.append("job = ?")
        params.append(job)
    if sample_id is not None:
        where.append("sample_id = ?")
        params.append(sample_id)
    rows = dict_rows(con, f"""SELECT sample_id, job, labeller, decision, scores, note, source, labelled_at
                              FROM labels {'WHERE ' + ' AND '.join(where) if where else ''}
                              ORDER BY labelled_at, sample_id, labeller""", params)
    for r in rows:
        r["scores"] = json.loads(r["scores"]) if r["scores"] else {}
    return rows


def label_count(con, job: str) -> int:
    if not has_labels(con):
        return 0
    return con.execute("SELECT count(*) FROM labels WHERE job = ?", [job]).fetchone()[0]


__all__ = ["DECISIONS", "Label", "LabelError", "StoreError", "checked", "has_labels", "label_count", "put_labels",
           "read_labels"]


def gold_rows(con, job: str) -> tuple[list[dict], dict[str, dict], str]:
    """What `factory probe --gold` compares: the job's labels, and per labelled sample the
    model's side: {"axes": axis -> mean over its parsed reviews, "overall": mean overall,
    "signals": name -> value (every `signals` row with a value, a reviewer's
    expected_scores.<i> under its own name), "rules": the rule signals' values, "n_tokens" of
    the likelihood, "decision", "stage", "text"}; and the job's decision.score."""
    labels = read_labels(con, job)
    ids = sorted({lb["sample_id"] for lb in labels})
    model = {sid: {"axes": {}, "overall": None, "signals": {}, "rules": [], "n_tokens": None, "decision": None,
                   "stage": None, "text": None} for sid in ids}
    if not ids:
        return labels, model, "reviewers"
    for sid, text, decision, stage in con.execute(
            """SELECT s.sample_id, s.text, v.decision, v.stage FROM samples s LEFT JOIN verdicts v USING (sample_id)
               WHERE s.sample_id IN (SELECT unnest(?))""", [ids]).fetchall():
        model[sid].update(text=text, decision=decision, stage=stage)
    axes: dict[str, dict[str, list[float]]] = {}
    overall: dict[str, list[float]] = {}
    for sid, scores, value in con.execute("SELECT sample_id, scores, overall FROM reviews "
                                          "WHERE sample_id IN (SELECT unnest(?))", [ids]).fetchall():
        overall.setdefault(sid, []).append(value)
        for axis, v in (json.loads(scores) if isinstance(scores, str) else scores or {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                axes.setdefault(sid, {}).setdefault(axis, []).append(float(v))
    for sid in ids:
        model[sid]["overall"] = sum(overall[sid]) / len(overall[sid]) if overall.get(sid) else None
        model[sid]["axes"] = {a: sum(v) / len(v) for a, v in axes.get(sid, {}).items()}
    if con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'signals'").fetchone()[0]:
        for sid, name, value, role, details in con.execute(
                """SELECT sample_id, signal, value, role, details FROM signals
                   WHERE sample_id IN (SELECT unnest(?)) AND value IS NOT NULL""", [ids]).fetchall():
            model[sid]["signals"][name] = value
            if role == "rules":
                model[sid]["rules"].append(value)
            if name == "likelihood" and details:
                model[sid]["n_tokens"] = (json.loads(details) if isinstance(details, str) else details).get("n_tokens")
    rule = con.execute("SELECT decision_rule FROM jobs WHERE fingerprint = ?", [job]).fetchone()
    score = (json.loads(rule[0]) if rule and rule[0] else {}).get("score", "reviewers")
    return labels, model, score
