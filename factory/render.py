"""Terminal rendering of stats and query results (rich tables)."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table


def stats_tables(stats: dict) -> list[Table]:
    f = stats["funnel"]
    funnel = Table(title=f"{stats['name']} ({stats['job']}), recipe {stats['recipe']}", show_header=True)
    funnel.add_column("stage")
    funnel.add_column("rows", justify="right")
    for stage in ("seeds", "generated", "exact_duplicates", "reviewed", "adjudicated", "accepted", "rejected", "dropped"):
        funnel.add_row(stage, str(f[stage]))
    for why, n in f["drop_reasons"].items():
        funnel.add_row(f"  dropped: {why}", str(n))
    for stage, n in f["rejected_by_stage"].items():
        funnel.add_row(f"  rejected by {stage}", str(n))
    funnel.add_row("adjudication rate", _pct(stats["adjudication_rate"]))
    funnel.add_row("acceptance rate", _pct(stats["acceptance_rate"]))

    scores = Table(title="review scores")
    for col in ("axis", "mean", "stddev", "histogram (score:count)"):
        scores.add_column(col)
    for axis, s in stats["scores"].items():
        hist = " ".join(f"{k}:{v}" for k, v in sorted(s.get("histogram", {}).items(), key=lambda kv: float(kv[0])))
        scores.add_row(axis, _num(s["mean"]), _num(s["stddev"]), hist)
    a = stats["reviewer_agreement"]
    scores.caption = (f"reviewer agreement: mean spread {_num(a['mean_spread'])}, "
                      f"reviewer pairs within 1 point {_pct(a['pairs_within_1_point'])}")
    tables = [funnel, scores]

    v = stats.get("verification")
    if v:
        ver = Table(title=f"verification: {v['verified']} of {v['checked']} verified ({_pct(v['pass_rate'])})")
        ver.add_column("why not verified / attempts")
        ver.add_column("rows", justify="right")
        for why, n in v["failure_reasons"].items():
            ver.add_row(why, str(n))
        for key, a in v["attempts"].items():
            ver.add_row(f"attempt {key} (correct)", f"{a['count']} ({a['correct']})")
        tables.append(ver)

    tokens = Table(title="tokens per role")
    for col in ("role", "calls", "prompt tokens", "completion tokens", "tok/s per engine"):
        tokens.add_column(col, justify="right" if col != "role" else "left")
    for role, t in stats["tokens"].items():
        tokens.add_row(role, str(t["calls"]), str(t["prompt_tokens"]), str(t["completion_tokens"]),
                       _num(t["completion_tokens_per_second"]))
    return [*tables, tokens]


def query_table(columns: list[str], rows: list[tuple]) -> Table:
    table = Table(show_header=True)
    for c in columns:
        table.add_column(c)
    for row in rows:
        table.add_row(*("NULL" if v is None else str(v) for v in row))
    return table


def print_all(console: Console, tables: list[Table]) -> None:
    for t in tables:
        console.print(t)


def _num(v) -> str:
    return "-" if v is None else f"{v:g}"


def _pct(v) -> str:
    return "-" if v is None else f"{v:.1%}"
