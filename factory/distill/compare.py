"""`factory runs`: the runs of each distillation side by side, and which mixture trained the
best student. A winner is named only when a paired test on the same evaluation items clears
(p < 0.05): McNemar's exact test for accuracy. Runs of a spec with `seeds` are shown one per
seed plus, per mixture, the mean across seeds with its 95% t-interval."""
from __future__ import annotations

import math
from statistics import mean, stdev

from rich import box
from rich.table import Table

ALPHA = 0.05


def latest_per_mixture(runs: list[dict]) -> dict[str, list[dict]]:
    """distill name -> its newest run per mixture (an older run of a changed spec is history);
    when that run is one seed of a `seeds` spec, every seed of its group (the newest of each)."""
    newest: dict[str, dict[str, dict]] = {}
    for r in runs:  # oldest first: later ones replace
        newest.setdefault(r["distill"], {})[r["mixture"]] = r
    out = {}
    for distill, per_mixture in newest.items():
        chosen = []
        for mixture, last in per_mixture.items():
            group = (last.get("metrics") or {}).get("seed_group")
            if group is None:
                chosen.append(last)
                continue
            by_seed = {r["metrics"]["seed"]: r for r in runs if r["distill"] == distill and r["mixture"] == mixture
                       and (r.get("metrics") or {}).get("seed_group") == group}
            chosen.extend(by_seed[s] for s in sorted(by_seed))
        out[distill] = chosen
    return out


def by_mixture(runs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in runs:
        out.setdefault(r["mixture"], []).append(r)
    return out


def seed_interval(values: list[float]) -> tuple[float, float | None, float | None]:
    """Mean across seeds and its 95% t-interval (None with one seed: no spread to measure)."""
    from scipy.stats import t

    m = mean(values)
    if len(values) < 2:
        return m, None, None
    half = t.ppf(0.975, len(values) - 1) * stdev(values) / math.sqrt(len(values))
    return m, m - half, m + half


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p: of the b + c discordant items, is the split b : c a fair
    coin's? (b: items only the first got right; c: only the second.)"""
    from scipy.stats import binomtest

    return 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)


def paired(first: list[dict], second: list[dict]) -> dict:
    """The two mixtures' runs on the items they share. Per item, each mixture's value averaged
    over its seeds; b = items where the first is ahead, c = where the second is; ties drop.
    With one seed each and 0/1 accuracy this is exactly McNemar's test; with several it is
    the sign test on per-item seed means, which keeps the item (not item x seed, which would
    count one hard item three times) as the unit of independence."""
    shared = set.intersection(*(set(r.get("items") or {}) for r in first + second))
    if not shared:
        return {"n": 0, "b": 0, "c": 0, "p": None}
    b = c = 0
    for item in shared:
        x = mean(r["items"][item] for r in first)
        y = mean(r["items"][item] for r in second)
        b, c = b + (x > y), c + (y > x)
    return {"n": len(shared), "b": b, "c": c, "p": mcnemar_exact(b, c)}


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
    """One sentence: the best mixture, and whether it is a win; then, where the rows came from
    the scripted reference teacher, a clause that says so. Runs that carry their per-item
    results (`items`, as stores.distill.list_runs gives them) are judged by the paired test;
    runs without them (older callers) by whether the 95% intervals overlap."""
    note = scripted_note(runs)
    scored = [r for r in runs if r["value"] is not None]
    said = _paired_verdict(scored) if scored and all(r.get("items") for r in scored) else _verdict(runs)
    return f"{said}; {note}" if note else said


def _paired_verdict(scored: list[dict]) -> str:
    groups = by_mixture(scored)
    metric = scored[0]["metric"]
    test = "McNemar exact" if metric == "accuracy" else "sign test"
    means = {m: seed_interval([r["value"] for r in rs]) for m, rs in groups.items()}
    seeds = max(len(rs) for rs in groups.values())
    over = f" mean of {seeds} seeds" if seeds > 1 else ""

    def tokens(m):
        return mean(r["metrics"].get("mean_output_tokens") or 0.0 for r in groups[m])

    best = max(groups, key=lambda m: (means[m][0], -tokens(m)))
    value, low, high = means[best]
    ci = f", 95% CI across seeds [{_fmt(low)}, {_fmt(high)}]" if low is not None else ""
    if len(groups) == 1:
        return f"one mixture: {best} ({metric}{over} {_fmt(value)}{ci})"
    tests = {m: paired(groups[best], groups[m]) for m in groups if m != best}
    n = max(t["n"] for t in tests.values())
    if all(means[m][0] == value for m in groups):
        return f"no mixture is ahead: every mixture has {metric}{over} {_fmt(value)} on the same {n} items"
    said = ", ".join(f"vs {m} p={_fmt(t['p'])} ({t['b']} items better, {t['c']} worse)"
                     for m, t in sorted(tests.items()))
    head = f"{best} leads ({metric}{over} {_fmt(value)}{ci}, n={n} items)"
    if all(t["p"] is not None and t["p"] < ALPHA for t in tests.values()):
        return f"best: {head}; the paired {test} clears every other mixture at p < {ALPHA}: {said}"
    unclear = [m for m, t in sorted(tests.items()) if t["p"] is None or t["p"] >= ALPHA]
    return (f"no winner: {head}, but the paired {test} on the same items does not clear "
            f"{', '.join(unclear)} (p >= {ALPHA}): {said}")


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
    seeded = any((r.get("metrics") or {}).get("seed") is not None for r in runs)
    header = ("mixture", *(("seed",) if seeded else ()), "rows", "steps", "loss", metric, "95% CI", "out tok",
              "after ok")
    body = []
    for mixture, group in by_mixture(runs).items():
        for r in group:
            m, t = r["metrics"], r["training"]
            body.append((r["mixture"], *((str(m.get("seed", "-")),) if seeded else ()), str(r["rows"]),
                         str(t.get("steps")), f"{_fmt(t.get('first_loss'), 1)}>{_fmt(t.get('final_loss'), 1)}",
                         _fmt(r["value"]), f"{_fmt(r['ci_low'], 2)}-{_fmt(r['ci_high'], 2)}",
                         _fmt(m.get("mean_output_tokens"), 0), _fmt(m.get("mean_tokens_after_first_correct"), 0)))
        values = [r["value"] for r in group if r["value"] is not None]
        if seeded and len(values) > 1:  # the mean across seeds, its interval next to the runs' own
            value, low, high = seed_interval(values)
            body.append((mixture, "mean", str(group[0]["rows"]), "", "", _fmt(value),
                         f"{_fmt(low, 2)}-{_fmt(high, 2)}", "", ""))
    table = Table(title=f"distill {distill}: {student.get('kind')} student ({student.get('parameters', 0) / 1e6:.1f}M "
                        f"parameters), {metric} on {first['metrics'].get('n')} items", box=box.SIMPLE_HEAD,
                  pad_edge=False, caption="; ".join(filter(None, [
                      "mean rows: mean across seeds, 95% t-interval" if seeded else "", scripted_note(runs)])) or None)
    for i, col in enumerate(header):
        width = max(len(col), *(len(row[i]) for row in body))
        table.add_column(col, justify="left" if i == 0 else "right", no_wrap=True, min_width=width)
    for row in body:
        table.add_row(*row)
    return table


# Stories (issue 12 item 4): the held-out measures of each run, and the comparison of
# distillations measured on the same held-out stories (accepted vs every story vs KD are
# three distillations of one job: one mixture each, the same held-out items).
HELDOUT = (("heldout_loss", "heldout_items", "held-out loss"),
           ("teacher_logprob", "teacher_items", "teacher log-likelihood of the continuations"))


def _span(low, high, digits=2) -> str:
    return "-" if low is None or high is None else f"{low:.{digits}f}..{high:.{digits}f}"


def heldout_table(distill: str, runs: list[dict]) -> Table | None:
    """Stories runs only (None otherwise): per run, the held-out loss (nats per token on
    held-out accepted stories) and the teacher's mean log-probability per token of the
    student's continuations, each with its 95% bootstrap interval over items; per mixture of
    a `seeds` spec, the mean across seeds with its t-interval. A run made before these were
    measured shows "-"."""
    if not runs or runs[0].get("task") != "stories":
        return None
    seeded = any((r.get("metrics") or {}).get("seed") is not None for r in runs)
    body = []
    for mixture, group in by_mixture(runs).items():
        for r in group:
            m = r.get("metrics") or {}
            loss_ci, teacher_ci = m.get("heldout_loss_ci") or [None, None], m.get("teacher_logprob_ci") or [None, None]
            body.append((mixture, *((str(m.get("seed", "-")),) if seeded else ()), _fmt(m.get("heldout_loss")),
                         _span(*loss_ci), _fmt(m.get("teacher_logprob")), _span(*teacher_ci),
                         "-" if m.get("teacher_scored") is None else f"{m['teacher_scored']}/{m.get('n')}"))
        if seeded:
            row = [mixture, "mean"]
            for key, _, _ in HELDOUT:
                values = [r["metrics"][key] for r in group if (r.get("metrics") or {}).get(key) is not None]
                value, low, high = seed_interval(values) if len(values) > 1 else (None, None, None)
                row += [_fmt(value), _span(low, high)]
            body.append((*row, ""))
    header = ("mixture", *(("seed",) if seeded else ()), "held-out loss", "95% CI", "teacher lp", "95% CI", "scored")
    first = runs[0]
    teacher = (first.get("metrics") or {}).get("teacher_model") or {}
    table = Table(title=f"distill {distill}: on {first['metrics'].get('n')} held-out accepted stories",
                  box=box.SIMPLE_HEAD, pad_edge=False,
                  caption=f"loss: nats/token of the held-out stories under the student; teacher lp: mean log-prob/token "
                          f"of its continuations under {teacher.get('model', 'the teacher')}; 95% CI: bootstrap over "
                          f"stories" + ("; mean rows: across seeds, t-interval" if seeded else ""))
    for i, col in enumerate(header):
        table.add_column(col, justify="left" if i == 0 else "right", no_wrap=True,
                         min_width=max(len(col), *(len(row[i]) for row in body)))
    for row in body:
        table.add_row(*row)
    return table


def paired_bootstrap(first: list[dict], second: list[dict], items_key: str = "heldout_items") -> dict:
    """Two groups of runs (one or more seeds each) on the items they share: per item each
    group's (nats, tokens) averaged over its seeds (the item, not item x seed, is the unit,
    as in `paired`), then bootstrap.paired_ratio_difference: first's ratio - second's with
    its 95% interval and p. Keys: n, difference, low, high, p."""
    from factory.distill.bootstrap import paired_ratio_difference

    shared = sorted(set.intersection(*(set(r.get(items_key) or {}) for r in first + second)))

    def side(runs):
        return ([mean(r[items_key][i][0] for r in runs) for i in shared],
                [mean(r[items_key][i][1] for r in runs) for i in shared])

    return paired_ratio_difference(side(first), side(second))


def heldout_comparisons(latest: dict[str, list[dict]]) -> list[str]:
    """latest_per_mixture's answer -> one line per measure for each set of stories
    distillations measured on the same held-out items (the same eval_set): the best (lowest
    loss, highest teacher log-likelihood; mean over seeds) against each other one, by a
    paired bootstrap over the shared items. A difference is called clear only when its 95%
    interval excludes 0."""
    by_eval: dict[str, dict[str, list[dict]]] = {}
    for distill, runs in latest.items():
        stories = [r for r in runs if r.get("task") == "stories" and r.get("heldout_items")]
        if stories:
            by_eval.setdefault(stories[0]["eval_set"], {})[distill] = stories
    lines = []
    for groups in by_eval.values():
        if len(groups) < 2:
            continue
        for key, items_key, label in HELDOUT:
            have = {d: rs for d, rs in groups.items() if all(r.get(items_key) for r in rs)}
            if len(have) < 2:
                continue
            value = {d: mean(r["metrics"][key] for r in rs) for d, rs in have.items()}
            lower_is_better = key == "heldout_loss"
            best = (min if lower_is_better else max)(have, key=value.__getitem__)
            said = []
            for other in sorted(d for d in have if d != best):
                t = paired_bootstrap(have[best], have[other], items_key)
                if t["difference"] is None:
                    said.append(f"vs {other}: no held-out item measured in both")
                    continue
                clear = t["low"] is not None and (t["high"] < 0 if lower_is_better else t["low"] > 0)
                said.append(f"vs {other} ({_fmt(value[other])}): {t['difference']:+.3f}, 95% CI "
                            f"[{_fmt(t['low'])}, {_fmt(t['high'])}], p={_fmt(t['p'])}, "
                            f"{'clear' if clear else 'not clear of 0'} (n={t['n']})")
            lines.append(f"{label} on the same held-out stories, paired bootstrap: {best} {_fmt(value[best])} "
                         f"{'lowest' if lower_is_better else 'highest'}; " + "; ".join(said))
    return lines
