"""What distillation reads (solutions, reference answers, stories) and writes (mixtures,
runs). A run's row and its evaluation rows commit in one transaction: the runs table
never holds a half-written run."""
from __future__ import annotations

import json

from stores.handle import takes_store
from stores.stats import scripted_teacher
from stores.insert import insert_rows
from stores.transaction import transaction


def _problems_from(use: str) -> str:
    # The accepted view: accepted, not a duplicate, not contaminated (migration m003).
    return "accepted" if use == "accepted" else "samples"


@takes_store
def solution_candidates(con, job: str, use: str, require: str) -> list[dict]:
    """Long and short solutions of a math job's problems that gave a final answer; with
    require='correct' only those whose answer matches the problem's reference."""
    correct = "AND so.correct" if require == "correct" else ""
    rows = con.execute(f"""
        SELECT so.solution_id, so.sample_id, so.kind, so.text AS solution, so.answer, so.correct,
               s.text AS question, s.content_hash, s.seed_index
        FROM solutions so JOIN {_problems_from(use)} s ON s.sample_id = so.sample_id
        WHERE so.job = ? AND s.job = ? AND so.kind IN ('long', 'short') AND so.status = 'ok'
          AND so.answer IS NOT NULL AND s.duplicate_of IS NULL {correct}
        ORDER BY so.solution_id""", [job, job]).fetchall()
    cols = ["solution_id", "sample_id", "kind", "solution", "answer", "correct", "question", "content_hash",
            "seed_index"]
    return [dict(zip(cols, r)) for r in rows]


@takes_store
def reference_problems(con, job: str) -> list[dict]:
    """Problems of a job whose answer can be trusted: a ground truth, or a majority of
    programs that verified. The pool that held-out evaluation draws from."""
    rows = con.execute("""
        SELECT s.sample_id, s.text, s.content_hash, v.reference_answer
        FROM samples s JOIN verifications v ON v.sample_id = s.sample_id
        WHERE s.job = ? AND s.duplicate_of IS NULL AND v.reference_answer IS NOT NULL
          AND (v.reference_source = 'ground_truth' OR v.verified)
        ORDER BY s.sample_id""", [job]).fetchall()
    return [{"sample_id": r[0], "question": r[1], "content_hash": r[2], "answer": r[3]} for r in rows]


@takes_store
def story_candidates(con, job: str, use: str) -> list[dict]:
    """A stories job's texts: the accepted view, or every sample not an exact duplicate."""
    rows = con.execute(f"""SELECT s.sample_id, s.text, s.content_hash FROM {_problems_from(use)} s
        WHERE s.job = ? AND s.duplicate_of IS NULL ORDER BY s.sample_id""", [job]).fetchall()
    return [{"sample_id": r[0], "text": r[1], "content_hash": r[2]} for r in rows]


def _insert_together(con, tables: list[tuple[str, list[dict]]]) -> None:
    """Rows of several tables in one transaction: all of them or none."""
    with transaction(con):
        for table, rows in tables:
            insert_rows(con, table, rows)


@takes_store
def record_mixture(con, mixture: dict, rows: list[dict]) -> None:
    """Idempotent: a mixture id is the hash of what it holds."""
    if not con.execute("SELECT 1 FROM mixtures WHERE mixture_id = ?", [mixture["mixture_id"]]).fetchone():
        _insert_together(con, [("mixtures", [mixture]), ("mixture_rows", rows)])


@takes_store
def finished_run(con, run_id: str) -> dict | None:
    rows = list_runs(con, run_id=run_id)
    return rows[0] if rows else None


@takes_store
def record_run(con, run: dict, evals: list[dict]) -> None:
    _insert_together(con, [("runs", [run]), ("run_evals", evals)])


RUN_COLUMNS = ["run_id", "distill", "task", "data_fingerprint", "mixture_id", "mixture", "eval_set", "student",
               "hyperparameters", "training", "metric", "value", "ci_low", "ci_high", "metrics", "checkpoint",
               "started_at", "finished_at", "rows"]


def list_runs(con, distill: str | None = None, run_id: str | None = None) -> list[dict]:
    """Finished runs, oldest first, with JSON columns decoded and the mixture's row count."""
    where, params = [], []
    if distill:
        where.append("r.distill = ?")
        params.append(distill)
    if run_id:
        where.append("r.run_id = ?")
        params.append(run_id)
    sql = f"""SELECT {', '.join('r.' + c for c in RUN_COLUMNS[:-1])}, m.rows FROM runs r
        JOIN mixtures m ON m.mixture_id = r.mixture_id
        {('WHERE ' + ' AND '.join(where)) if where else ''} ORDER BY r.finished_at, r.run_id"""
    out = []
    for row in con.execute(sql, params).fetchall():
        run = dict(zip(RUN_COLUMNS, row))
        for key in ("student", "hyperparameters", "training", "metrics"):
            run[key] = json.loads(run[key])
        out.append(run)
    items = _items_of(con, [r["run_id"] for r in out])
    for run in out:  # per evaluation item: what `factory runs`' paired tests compare
        run["items"] = items.get(run["run_id"], {})
    measured = _story_measures_of(con, [r["run_id"] for r in out if r["task"] == "stories"])
    for run in out:  # stories: per held-out item (nats, tokens) of the loss and of the teacher's log-likelihood
        run["heldout_items"], run["teacher_items"] = measured.get(run["run_id"], ({}, {}))
    for run in out:  # `factory runs` says when the data came from the scripted reference teacher
        job = con.execute("SELECT json_extract_string(selection, '$.job') FROM mixtures WHERE mixture_id = ?",
                          [run["mixture_id"]]).fetchone()[0]
        run["scripted_teacher"] = scripted_teacher(con, job) if job else []
    return out


def _items_of(con, run_ids: list[str]) -> dict[str, dict[str, float]]:
    """run id -> {item id: 1.0/0.0 when graded correct/wrong, else the item's score}."""
    if not run_ids:
        return {}
    out: dict[str, dict[str, float]] = {}
    for run_id, item_id, correct, score in con.execute(
            "SELECT run_id, item_id, correct, score FROM run_evals WHERE list_contains(?, run_id) ORDER BY run_id, item_id",
            [run_ids]).fetchall():
        value = float(correct) if correct is not None else (float(score) if score is not None else None)
        if value is not None:
            out.setdefault(run_id, {})[item_id] = value
    return out


def _story_measures_of(con, run_ids: list[str]) -> dict[str, tuple[dict, dict]]:
    """run id -> ({item: [nats, tokens]} of the held-out loss, {item: [log-prob, tokens]} of
    the teacher's likelihood of the continuation). Runs made before these were measured
    have neither (their details lack the keys): empty dicts."""
    if not run_ids:
        return {}
    out: dict[str, tuple[dict, dict]] = {}
    for run_id, item_id, details in con.execute(
            "SELECT run_id, item_id, details FROM run_evals WHERE list_contains(?, run_id) ORDER BY run_id, item_id",
            [run_ids]).fetchall():
        d = json.loads(details) if details else {}
        loss, teacher = out.setdefault(run_id, ({}, {}))
        if d.get("heldout"):
            loss[item_id] = [d["heldout"]["nats"], d["heldout"]["tokens"]]
        if d.get("teacher"):
            teacher[item_id] = [d["teacher"]["logprob"], d["teacher"]["tokens"]]
    return out


def runs_of_job(con, job: str) -> list[dict]:
    """Runs whose data came from this job (for the job's HTML report)."""
    ids = {r[0] for r in con.execute("""SELECT r.run_id FROM runs r JOIN mixtures m ON m.mixture_id = r.mixture_id
        WHERE json_extract_string(m.selection, '$.job') = ?""", [job]).fetchall()}
    return [r for r in list_runs(con) if r["run_id"] in ids]
