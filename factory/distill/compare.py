"""`factory runs`: the runs of each distillation side by side, and which mixture trained the
best student, said with its 95% interval so that a lead inside the noise is not called a win."""
from __future__ import annotations

from rich import box
from rich.table import Table


def latest_per_mixture(runs: list[dict]) -> dict[str, list[dict]]:
    """distill name -> its newest run per mixture (an older run of a changed spec is history)."""
    out: dict[str, dict[str, dict]] = {}
    for r in runs:  # oldest first: later ones replace
        out.setdefault(r["distill"], {})[r["mixture"]] = r
    return {d: list(m.values()) for d, m in out.items()}


def _fmt(v, digits=3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def scripted_note(runs: list[dict]) -> str:
    """Runs whose source job's rows came from the scripted reference teacher say so: such a
    student learned from the generator's worked steps, not from a model. A run carries
    `scripted_teacher` (the source job's roles written by it, stores.stats.scripted_teacher)."""
    roles = sorted({role for r in runs for role in r.get("scripted_teacher") or ()})
    return (f"trained on rows of the scripted reference teacher ({', '.join(roles)}), not a model's"
            if roles else "")


def verdict(runs: list[dict]) -> str:
    """One sentence: the best mixture by the metric (ties: higher interval floor, then fewer
    output tokens), and whether its interval clears every other run's; then, where the rows
    came from the scripted reference teacher, a clause that says so."""
    note = scripted_note(runs)
    said = _verdict(runs)
    return f"{said}; {note}" if note else said


def _verdict(runs: list[dict]) -> str:
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
    """Narrow enough for an 80-column terminal; run ids, checkpoints and every metric are in --json."""
    first = runs[0]
    student = first["student"]
    metric = first["metric"]
    header = ("mixture", "rows", "steps", "loss", metric, "95% CI", "out tok", "after ok")
    body = []
    for r in runs:
        m, t = r["metrics"], r["training"]
        body.append((r["mixture"], str(r["rows"]), str(t.get("steps")),
                     f"{_fmt(t.get('first_loss'), 1)}>{_fmt(t.get('final_loss'), 1)}", _fmt(r["value"]),
                     f"{_fmt(r['ci_low'], 2)}-{_fmt(r['ci_high'], 2)}", _fmt(m.get("mean_output_tokens"), 0),
                     _fmt(m.get("mean_tokens_after_first_correct"), 0)))
    table = Table(title=f"distill {distill}: {student.get('kind')} student ({student.get('parameters', 0) / 1e6:.1f}M "
                        f"parameters), {metric} on {first['metrics'].get('n')} items", box=box.SIMPLE_HEAD,
                  pad_edge=False, caption=scripted_note(runs) or None)
    for i, col in enumerate(header):
        width = max(len(col), *(len(row[i]) for row in body))
        table.add_column(col, justify="left" if i == 0 else "right", no_wrap=True, min_width=width)
    for row in body:
        table.add_row(*row)
    return table
