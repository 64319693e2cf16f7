"""What `factory probe` prints: the headline, then pairwise accuracy per signal (rows) and
corruption kind (columns) with 95% intervals, then the decision score's AUC per kind."""
from __future__ import annotations

from rich.table import Table


def _cell(value, ci) -> str:
    if value is None:
        return "–"
    low, high = ci
    return f"{value:.2f} [{low:.2f}, {high:.2f}]" if low is not None else f"{value:.2f}"


def headline(summary: dict) -> str:
    acc, (low, high) = summary["pairwise_accuracy"], summary["pairwise_accuracy_ci"]
    if acc is None:
        return f"probe {summary['run_id'][:10]}: no corruption could be scored"
    return (f"probe {summary['run_id'][:10]} of job {summary['name']}: the decision score ranks the original above "
            f"its corruption in {acc:.2f} of {summary['pairs']} pairs (95% CI {low:.2f}-{high:.2f}; 0.5 is a coin "
            f"flip), {summary['samples']} samples, {summary['model_calls']} model calls, {summary['seconds']:.0f} s")


def tables(summary: dict) -> list[Table]:
    """Per kind (the decision score), per signal (all kinds), then signal x kind (accuracy only;
    --json and probe_runs.summary hold every interval)."""
    by_signal, by_kind = summary["by_signal"], summary["by_kind"]
    kinds = [k for k, v in by_kind.items() if v.get("pairs")]
    per_kind = Table(title="decision score per corruption kind (95% CI: Wilson for accuracy, bootstrap for AUC)")
    for col in ("kind", "pairs", "skipped", "pairwise accuracy", "AUC"):
        per_kind.add_column(col, justify="left" if col == "kind" else "right")
    for kind, v in by_kind.items():
        per_kind.add_row(kind, str(v.get("pairs", 0)), str(v.get("skipped", 0)),
                         _cell(v.get("pairwise_accuracy"), v.get("pairwise_ci")), _cell(v.get("auc"), v.get("auc_ci")))
    per_signal = Table(title="each signal over all kinds")
    for col in ("signal", "pairs", "pairwise accuracy", "AUC"):
        per_signal.add_column(col, justify="left" if col == "signal" else "right")
    for signal, cells in by_signal.items():
        a = cells.get("all", {})
        per_signal.add_row(signal, str(a.get("pairs", 0)), _cell(a.get("pairwise_accuracy"), a.get("pairwise_ci")),
                           _cell(a.get("auc"), a.get("auc_ci")))
    matrix = Table(title="pairwise accuracy, signal x kind")
    matrix.add_column("signal")
    for k in kinds:
        matrix.add_column(k, justify="right")
    for signal, cells in by_signal.items():
        matrix.add_row(signal, *[_cell(cells.get(k, {}).get("pairwise_accuracy"), (None, None)) for k in kinds])
    out = [per_kind, per_signal, matrix]
    held = summary.get("held_out")
    if held:
        table = Table(title="held-out kinds: the decision score on corruptions nothing was tuned on "
                            f"(all: {_cell(held.get('pairwise_accuracy'), held.get('pairwise_ci') or (None, None))}, "
                            f"{held.get('pairs') or 0} pairs)")
        for col in ("held-out kind", "pairs", "skipped", "pairwise accuracy", "AUC"):
            table.add_column(col, justify="left" if col == "held-out kind" else "right")
        for kind, v in held["by_kind"].items():
            table.add_row(kind, str(v.get("pairs", 0)), str(v.get("skipped", 0)),
                          _cell(v.get("pairwise_accuracy"), v.get("pairwise_ci")), _cell(v.get("auc"), v.get("auc_ci")))
        out.append(table)
    return out


def stats_line(p: dict) -> str:
    """`factory stats`: the latest probe's headline (stats['probe'])."""
    acc = "–" if p["pairwise_accuracy"] is None else f"{p['pairwise_accuracy']:.2f}"
    ci = "" if p["ci_low"] is None else f" (95% CI {p['ci_low']:.2f}-{p['ci_high']:.2f})"
    return (f"judge probe {p['run_id'][:10]} ({p['created_at'][:19]}): the decision score ranks originals above "
            f"their corruptions in {acc} of {p['pairs']} pairs{ci}; factory probe shows every kind and signal")


def _num(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def gold_line(g: dict) -> str:
    """The headline of `factory probe --gold` (and of `factory stats` when the job has labels)."""
    v = g["verdict"]
    if not v["labels"]:
        return f"gold: {g['labels']} human labels, none on a sample with a verdict"
    low, high = v["agreement_ci"]
    return (f"gold: the verdict agrees with people on {v['agreement']:.2f} of {v['labels']} labels "
            f"({v['samples']} samples, {len(g['labellers'])} labellers; 95% CI {_num(low)}-{_num(high)}), "
            f"Cohen's kappa {_num(v['kappa'])}; {len(v['disagreements'])} disagreements")


def gold_tables(g: dict) -> list[Table]:
    """Each score signal against people (AUC, Spearman), each axis people scored, the disagreements."""
    scores = Table(title="each signal against people's accept / reject (AUC: 0.5 is chance; 95% CI by sample)")
    for col in ("signal", "labels", "AUC", "Spearman"):
        scores.add_column(col, justify="left" if col == "signal" else "right")
    for name, s in g["scores"].items():
        scores.add_row(name, str(s["labels"]), _cell(s["auc"], s["auc_ci"]), _num(s["spearman_accept"]))
    out = [scores]
    if g["axes"]:
        axes = Table(title="reviewers' mean against people's 1-10, per axis")
        for col in ("axis", "labels", "Spearman"):
            axes.add_column(col, justify="left" if col == "axis" else "right")
        for axis, a in g["axes"].items():
            axes.add_row(axis, str(a["labels"]), _num(a["spearman"]))
        out.append(axes)
    if g["verdict"]["disagreements"]:
        dis = Table(title="where the verdict and people disagree (factory explain SAMPLE_ID, or the browse page)")
        for col in ("sample", "labeller", "people", "model", "stage", "note"):
            dis.add_column(col)
        for d in g["verdict"]["disagreements"]:
            dis.add_row(d["sample_id"], d["labeller"], d["people"], d["model"], d["stage"] or "", d["note"] or "")
        out.append(dis)
    return out
