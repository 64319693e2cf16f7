"""`factory runs`: the runs of each distillation side by side, and which mixture trained the
best student, said with its 95% interval so that a lead inside the noise is not called a win."""
from __future__ import annotations

from rich.table import Table


def latest_per_mixture(runs: list[dict]) -> dict[str, list[dict]]:
    """distill name -> its newest run per mixture (an older run of a changed spec is history)."""
    out: dict[str, dict[str, dict]] = {}
    for r in runs:  # oldest first: later ones replace
        out.setdefault(r["distill"], {})[r["mixture"]] = r
    return {d: list(m.values()) for d, m in out.items()}


def _fmt(v, digits=3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def verdict(runs: list[dict]) -> str:
    """One sentence: the best mixture by the metric (ties: higher interval floor, then fewer
    output tokens), and whether its interval clears every other run's."""
    scored = [r for r in runs if r["value"] is not None]
    if not scored:
        return "no run has a metric yet"
    metric = scored[0]["metric"]
    n = scored[0]["metrics"].get("n")
    key = lambda r: (r["value"], r["ci_low"] or 0.0, -(r["metrics"].get("mean_output_tokens") or 0.0))  # noqa: E731
    best = max(scored, key=key)
    if len(scored) == 1:
        return f"one run: {best['mixture']} ({metric} {_fmt(best['value'])})"
    if all(r["value"] == best["value"] for r in scored):
        return (f"no mixture is ahead: every student has {metric} {_fmt(best['value'])} on the same {n} items "
                f"(95% CI [{_fmt(best['ci_low'])}, {_fmt(best['ci_high'])}])")
    overlapping = [r["mixture"] for r in scored if r is not best and r["ci_high"] is not None
                   and best["ci_low"] is not None and r["ci_high"] >= best["ci_low"]]
    head = (f"best: {best['mixture']} ({metric} {_fmt(best['value'])}, 95% CI [{_fmt(best['ci_low'])}, "
            f"{_fmt(best['ci_high'])}], n={n})")
    if overlapping:
        return head + f"; not a clear win: its interval overlaps {', '.join(overlapping)}"
    return head + "; its interval clears every other mixture's"


def runs_table(distill: str, runs: list[dict]) -> Table:
    table = Table(title=f"distill {distill}", show_header=True)
    for col in ("mixture", "rows", "student", "steps", "loss first->last", "metric", "value", "95% CI",
                "mean out tok", "tok after correct", "run", "checkpoint"):
        table.add_column(col, overflow="fold")
    for r in runs:
        m, t, s = r["metrics"], r["training"], r["student"]
        table.add_row(
            r["mixture"], str(r["rows"]), f"{s.get('kind')} {s.get('parameters', 0) / 1e6:.1f}M",
            str(t.get("steps")), f"{_fmt(t.get('first_loss'), 2)}->{_fmt(t.get('final_loss'), 2)}", r["metric"],
            _fmt(r["value"]), f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]", _fmt(m.get("mean_output_tokens"), 1),
            _fmt(m.get("mean_tokens_after_first_correct"), 1), r["run_id"][:10], r["checkpoint"])
    return table
