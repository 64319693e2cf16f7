"""`factory probe JOB --gold`: the job's judge against people. Read-only: no model call,
nothing written; the labels come from the `labels` table (browse, `factory label import`).

An observation is one label (a sample may have several labellers). Labels of one sample
move together, so every interval resamples samples, each with all of its labels (the
probe's cluster bootstrap, factory/probing/metrics.py). Per signal:
- the final verdict: agreement with the people's accept / reject (the model's drop counts as
  reject) with its 95% interval, Cohen's kappa (agreement beyond what the two marginals
  give by chance), the 2 x 2 counts and every disagreeing label;
- each score (every reviewer axis, overall, the decision score, likelihood, the rule
  signals, a reviewer's expected scores): the AUC of the score between the labels people
  accepted and those they rejected (0.5: no better than chance) with its interval, and
  Spearman's rho with the people's accept (1) / reject (0);
- each rubric axis people scored too: Spearman's rho between the reviewers' mean and the
  people's 1-10.
"""
from __future__ import annotations

import math
from pathlib import Path

from factory.decide import decision_score
from factory.probing.metrics import auc, cluster_interval

VERDICT = "verdict"


class NoLabels(LookupError):
    """The job has no human label to compare with; one line naming the job and the database."""
    exit_code = 1  # a runtime problem (cli.py's codes)


def labelled_job(con, job: str) -> str:
    """A job YAML's fingerprint in this database (its legacy ones too), or a name /
    fingerprint resolved."""
    from factory.spec import known_fingerprints, load_job
    from stores.stats import UnknownJob, existing_job, resolve_job

    if job.endswith((".yaml", ".yml")) and Path(job).is_file():
        spec = load_job(job)
        found = existing_job(con, known_fingerprints(spec))
        if found is None:
            raise UnknownJob(f"job {spec.name} ({spec.fingerprint}) is not in the database: run it first")
        return found
    return resolve_job(con, job)


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman's rho (average ranks for ties); None below 3 pairs or when one side is constant."""
    if len(x) < 3:
        return None
    from scipy.stats import spearmanr

    if len(set(x)) < 2 or len(set(y)) < 2:
        return None
    rho = spearmanr(x, y).statistic
    return None if math.isnan(rho) else float(rho)


def kappa(model: list[int], people: list[int]) -> float | None:
    """Cohen's kappa of two 0/1 raters; None when there is nothing to compare, and 1.0 when
    both said the same single thing throughout (chance agreement 1: kappa is 0/0)."""
    if not model:
        return None
    from sklearn.metrics import cohen_kappa_score

    if len(set(model) | set(people)) < 2:
        return 1.0
    value = float(cohen_kappa_score(model, people))
    return None if math.isnan(value) else value


def _round(v):
    return None if v is None else round(v, 4)


def signals_of(side: dict, score: str) -> dict[str, float]:
    """Every score the job has for one sample, higher = better; the decision score by the
    job's decision.score (factory/decide.py), None ones left out."""
    out = {f"reviewers.{a}": v for a, v in side["axes"].items()}
    out["reviewers.overall"] = side["overall"]
    out.update(side["signals"])
    out["decision_score"] = decision_score(score, side["overall"], side["signals"].get("likelihood"), side["rules"],
                                           side["text"], side["n_tokens"])
    return {k: v for k, v in out.items() if v is not None}


def verdict_agreement(labels: list[dict], model: dict) -> dict:
    """The final verdict against each label (a sample without a verdict is left out)."""
    rows = [(lb, model[lb["sample_id"]]["decision"]) for lb in labels if model[lb["sample_id"]]["decision"]]
    said = [1 if d == "accept" else 0 for _, d in rows]
    people = [1 if lb["decision"] == "accept" else 0 for lb, _ in rows]
    credits = [float(a == b) for a, b in zip(said, people)]
    ids = [lb["sample_id"] for lb, _ in rows]
    low, high = cluster_interval(credits, ids) if rows else (None, None)
    counts = {f"model_{m}_people_{p}": sum(1 for a, b in zip(said, people) if (a, b) == (mi, pi))
              for m, mi in (("accept", 1), ("reject", 0)) for p, pi in (("accept", 1), ("reject", 0))}
    return {"labels": len(rows), "samples": len(set(ids)),
            "agreement": _round(sum(credits) / len(rows)) if rows else None,
            "agreement_ci": [_round(low), _round(high)], "kappa": _round(kappa(said, people)), "counts": counts,
            "disagreements": [{"sample_id": lb["sample_id"], "labeller": lb["labeller"], "people": lb["decision"],
                               "model": d, "stage": model[lb["sample_id"]]["stage"], "note": lb["note"]}
                              for (lb, d), c in zip(rows, credits) if not c]}


def score_agreement(labels: list[dict], scores: dict[str, dict[str, float]]) -> dict[str, dict]:
    """Per score signal: AUC between people's accepts and rejects, Spearman with accept = 1."""
    names = sorted({n for s in scores.values() for n in s})
    out = {}
    for name in names:
        have = [(lb, scores[lb["sample_id"]][name]) for lb in labels if name in scores[lb["sample_id"]]]
        pos = [(v, lb["sample_id"]) for lb, v in have if lb["decision"] == "accept"]
        neg = [(v, lb["sample_id"]) for lb, v in have if lb["decision"] != "accept"]
        a = auc([v for v, _ in pos], [v for v, _ in neg], [i for _, i in pos], [i for _, i in neg])
        out[name] = {"labels": len(have), "auc": _round(a["value"]), "auc_ci": [_round(a["ci_low"]), _round(a["ci_high"])],
                     "spearman_accept": _round(spearman([v for _, v in have],
                                                        [1.0 if lb["decision"] == "accept" else 0.0 for lb, _ in have]))}
    return out


def axis_agreement(labels: list[dict], model: dict) -> dict[str, dict]:
    """Per rubric axis people scored: Spearman between the reviewers' mean and the people's score."""
    out = {}
    for axis in sorted({a for lb in labels for a in lb["scores"]}):
        pairs = [(model[lb["sample_id"]]["axes"][axis], lb["scores"][axis]) for lb in labels
                 if axis in lb["scores"] and axis in model[lb["sample_id"]]["axes"]]
        out[axis] = {"labels": len(pairs), "spearman": _round(spearman([m for m, _ in pairs], [p for _, p in pairs]))}
    return out


def compare(labels: list[dict], model: dict, score: str = "reviewers") -> dict:
    """The --gold summary from stores.labels.gold_rows' three parts."""
    scores = {sid: signals_of(side, score) for sid, side in model.items()}
    return {"labels": len(labels), "samples": len(model), "labellers": sorted({lb["labeller"] for lb in labels}),
            "decision_score": score, VERDICT: verdict_agreement(labels, model),
            "scores": score_agreement(labels, scores), "axes": axis_agreement(labels, model)}


def gold(con, job: str) -> dict:
    from stores.labels import gold_rows

    labels, model, score = gold_rows(con, job)
    return {"job": job, **compare(labels, model, score)}
