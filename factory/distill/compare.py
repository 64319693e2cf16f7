"""`factory runs`: the runs of each distillation side by side, and which mixture trained the
best student. A winner (or a "clear" held-out difference) is named only by the seed-level
test of factory/distill/seedtest.py: per-seed paired differences on the shared items, a
t-interval across seeds that must exclude 0, Holm-corrected when several arms are compared;
with fewer than 3 seeds the line says "not enough seeds to call" and shows the per-seed
numbers (one seed's McNemar is shown as descriptive only). Runs of a spec with `seeds` are
shown one per seed plus, per mixture, the mean across seeds with its 95% t-interval."""
from __future__ import annotations

import math
from statistics import mean, stdev

from rich import box
from rich.table import Table

from factory.distill import seedtest

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
    """McNemar on one run of each mixture, over the items both were graded on: b = items only
    the first got right, c = only the second. Descriptive only: its unit is the item, so it
    says nothing about another training seed (issue 22), and `verdict` never calls a winner
    on it. Several runs a side are refused: averaging items over seeds first is the flawed
    test that treated trained models as fixed."""
    if len(first) != 1 or len(second) != 1:
        raise ValueError("paired: McNemar is descriptive for one run a side; compare seeds with seedtest.compare")
    (a,), (z,) = first, second
    shared = set(a.get("items") or {}) & set(z.get("items") or {})
    b = sum(a["items"][i] > z["items"][i] for i in shared)
    c = sum(z["items"][i] > a["items"][i] for i in shared)
    return {"n": len(shared), "b": b, "c": c, "p": mcnemar_exact(b, c) if shared else None}


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
    """One sentence: the best mixture, and whether the seed-level test (seedtest) calls it a
    winner; then, where the rows came from the scripted reference teacher, a clause that says
    so. Runs that carry their per-item results (`items`, as stores.distill.list_runs gives
    them) are compared per seed on their shared items; runs without them (older callers) by
    the per-seed difference of their values."""
    note = scripted_note(runs)
    scored = [r for r in runs if r["value"] is not None]
    if not scored:
        said = "no run has a metric yet"
    else:
        said = _verdict(scored, "items" if all(r.get("items") for r in scored) else None)
    return f"{said}; {note}" if note else said


def seed_calls(groups: dict[str, list[dict]], best: str, items_key: str | None,
               higher_is_better: bool = True) -> dict[str, dict]:
    """best vs each other arm by seedtest.compare (best - other), each with `holm`: its p
    adjusted over every pairwise comparison of the arms, and `clear`. The family is all
    m(m-1)/2 pairs, not the m-1 that involve the best, because the best was picked by looking
    at these same numbers; with 2 arms it is the one comparison, unadjusted."""
    names = list(groups)
    tests = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            x, y = (b, a) if b == best else (a, b)  # the best first: its differences read as its lead
            tests[(x, y)] = seedtest.compare(groups[x], groups[y], items_key)
    for t, p in zip(tests.values(), seedtest.holm([t["p"] for t in tests.values()])):
        ahead = t["difference"] is not None and (t["difference"] > 0) == higher_is_better
        t["holm"], t["family"] = p, len(tests)
        t["clear"] = t["enough"] and p < ALPHA and ahead
    return {y: t for (x, y), t in tests.items() if x == best}


def _per_seed(t: dict) -> str:
    return ", ".join(("one run" if s is None else f"seed {s}") + f" {d:+.3f}"
                     for s, d in zip(t["seeds"], t["per_seed"]))


def _comparison(other: str, t: dict) -> str:
    """`vs other: mean difference (per seed), intervals, Holm p` (per seed only when not enough seeds)."""
    if not t["per_seed"]:
        return f"vs {other}: no seed or item measured in both"
    if not t["enough"]:
        return f"vs {other}: {_per_seed(t)}"
    boot = "" if t["boot_low"] is None else f", two-stage bootstrap [{_fmt(t['boot_low'])}, {_fmt(t['boot_high'])}]"
    return (f"vs {other}: {t['difference']:+.3f} ({_per_seed(t)}), 95% t-interval across seeds "
            f"[{_fmt(t['low'])}, {_fmt(t['high'])}]{boot}, Holm p={_fmt(t['holm'])}")


def _called(head: str, calls: dict[str, dict], descriptive: str = "") -> str:
    """The sentence for `head` (the best and its numbers) from seed_calls' answer."""
    said = "; ".join(_comparison(m, t) for m, t in sorted(calls.items()))
    if not all(t["enough"] for t in calls.values()):
        fewest = min(len(t["seeds"]) for t in calls.values())
        return (f"not enough seeds to call ({fewest} paired seed{'s' if fewest != 1 else ''}; the seed-level "
                f"test needs {seedtest.MIN_SEEDS}): {head}; per-seed differences {said}{descriptive}")
    first = next(iter(calls.values()))
    test = f"the seed-level test ({len(first['seeds'])} seeds, Holm over {first['family']} comparisons)"
    if all(t["clear"] for t in calls.values()):
        return f"best: {head}; {test} clears every other: {said}"
    unclear = [m for m, t in sorted(calls.items()) if not t["clear"]]
    return f"no winner: {head}, but {test} does not clear {', '.join(unclear)}: {said}"


def _mcnemar(groups: dict[str, list[dict]], best: str) -> str:
    """One run per mixture with 0/1 items: McNemar per pair, said as descriptive."""
    if any(len(rs) != 1 for rs in groups.values()) or not all(v in (0.0, 1.0) for rs in groups.values()
                                                              for v in rs[0]["items"].values()):
        return ""
    tests = {m: paired(groups[best], rs) for m, rs in groups.items() if m != best}
    said = ", ".join(f"vs {m} p={_fmt(t['p'])} ({t['b']} items better, {t['c']} worse)"
                     for m, t in sorted(tests.items()))
    return (f"; McNemar exact on the one seed, descriptive only (its unit is the item, not the training "
            f"seed): {said}")


def _verdict(scored: list[dict], items_key: str | None) -> str:
    groups = by_mixture(scored)
    metric = scored[0]["metric"]
    means = {m: seed_interval([r["value"] for r in rs]) for m, rs in groups.items()}
    seeds = max(len(rs) for rs in groups.values())
    over = f" mean of {seeds} seeds" if seeds > 1 else ""

    def tokens(m):
        return mean(r["metrics"].get("mean_output_tokens") or 0.0 for r in groups[m])

    best = max(groups, key=lambda m: (means[m][0], -tokens(m)))
    value, low, high = means[best]
    if seeds > 1:
        ci = f", 95% CI across seeds [{_fmt(low)}, {_fmt(high)}]" if low is not None else ""
    else:  # one run: its own interval over items
        ci = f", 95% CI [{_fmt(groups[best][0].get('ci_low'))}, {_fmt(groups[best][0].get('ci_high'))}]"
    if len(groups) == 1:
        return f"one mixture: {best} ({metric}{over} {_fmt(value)}{ci})"
    calls = seed_calls(groups, best, items_key)
    n = max(t["n"] for t in calls.values()) if items_key else scored[0]["metrics"].get("n")
    if all(means[m][0] == value for m in groups):
        return f"no mixture is ahead: every mixture has {metric}{over} {_fmt(value)} on the same {n} items"
    head = f"{best} leads ({metric}{over} {_fmt(value)}{ci}, n={n} items)"
    return _called(head, calls, _mcnemar(groups, best) if items_key else "")


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
    a `seeds` spec, the mean across seeds with its t-interval. A run without them (recorded
    without a stories evaluation of that kind) shows "-"."""
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


def _one_seed_bootstrap(first: list[dict], second: list[dict], items_key: str) -> str:
    """One run a side: the paired bootstrap over items (bootstrap.paired_ratio_difference),
    said as descriptive (its unit is the item, not the training seed); "" otherwise."""
    from factory.distill.bootstrap import paired_ratio_difference

    if len(first) != 1 or len(second) != 1:
        return ""
    (a,), (b,) = first, second
    shared = sorted(set(a[items_key]) & set(b[items_key]))
    t = paired_ratio_difference(*(([r[items_key][i][0] for i in shared], [r[items_key][i][1] for i in shared])
                                  for r in (a, b)))
    if t["low"] is None:
        return ""
    return f" (one seed's bootstrap over items, descriptive only: [{_fmt(t['low'])}, {_fmt(t['high'])}])"


def _heldout_line(have: dict[str, list[dict]], key: str, items_key: str, label: str) -> str:
    """One measure's line: the best distillation (lowest loss, highest teacher
    log-likelihood; mean over seeds) against each other by seed_calls."""
    value = {d: mean(r["metrics"][key] for r in rs) for d, rs in have.items()}
    lower_is_better = key == "heldout_loss"
    best = (min if lower_is_better else max)(have, key=value.__getitem__)
    calls = seed_calls(have, best, items_key, higher_is_better=not lower_is_better)
    said = []
    for other, t in sorted(calls.items()):
        if not t["per_seed"]:
            said.append(f"vs {other}: no seed and held-out item measured in both")
        elif not t["enough"]:
            one = _one_seed_bootstrap(have[best], have[other], items_key)
            said.append(f"vs {other} ({_fmt(value[other])}): {_per_seed(t)}, not enough seeds to call "
                        f"(the seed-level test needs {seedtest.MIN_SEEDS}){one}")
        else:
            said.append(f"vs {other} ({_fmt(value[other])}): {t['difference']:+.3f} ({_per_seed(t)}), 95% t-interval "
                        f"across seeds [{_fmt(t['low'])}, {_fmt(t['high'])}], two-stage bootstrap "
                        f"[{_fmt(t['boot_low'])}, {_fmt(t['boot_high'])}], Holm p={_fmt(t['holm'])} over "
                        f"{t['family']}, {'clear' if t['clear'] else 'not clear of 0'} (n={t['n']})")
    return (f"{label} on the same held-out stories, seed-level test: {best} {_fmt(value[best])} "
            f"{'lowest' if lower_is_better else 'highest'}; " + "; ".join(said))


def heldout_comparisons(latest: dict[str, list[dict]]) -> list[str]:
    """latest_per_mixture's answer -> one line per measure for each set of stories
    distillations measured on the same held-out items (the same eval_set), by the seed-level
    test: a difference is called clear only when its t-interval across seeds excludes 0
    (Holm-adjusted over the distillations' pairs), with at least 3 seeds."""
    by_eval: dict[str, dict[str, list[dict]]] = {}
    for distill, runs in latest.items():
        stories = [r for r in runs if r.get("task") == "stories" and r.get("heldout_items")]
        if stories:
            by_eval.setdefault(stories[0]["eval_set"], {})[distill] = stories
    lines = []
    for groups in by_eval.values():
        for key, items_key, label in HELDOUT:
            have = {d: rs for d, rs in groups.items() if all(r.get(items_key) for r in rs)}
            if len(have) >= 2:
                lines.append(_heldout_line(have, key, items_key, label))
    return lines


def _evaluation_of(r: dict) -> str:
    """Runs graded on the same evaluation settings draw the same items (builtin: the generator
    seed; held_out / file: the same source), less those each training set removed for overlap:
    the seed-level test pairs them on the items both kept."""
    e = (r.get("metrics") or {}).get("evaluation") or {}
    return repr(sorted((k, repr(v)) for k, v in e.items()))


def accuracy_comparisons(latest: dict[str, list[dict]]) -> list[str]:
    """math distillations that each train one mixture, graded on the same evaluation settings
    (e.g. verified-only vs every answered solution of one job): one line per set, the most
    accurate against each other by seed_calls on their shared items, as heldout_comparisons
    does for stories."""
    by_eval: dict[str, dict[str, list[dict]]] = {}
    for distill, runs in latest.items():
        math_runs = [r for r in runs if r.get("task") == "math" and r.get("items") and r["value"] is not None]
        if math_runs and len({r["mixture"] for r in math_runs}) == 1:
            by_eval.setdefault(_evaluation_of(math_runs[0]), {})[distill] = math_runs
    lines = []
    for have in by_eval.values():
        if len(have) < 2:
            continue
        value = {d: mean(r["value"] for r in rs) for d, rs in have.items()}
        best = max(have, key=value.__getitem__)
        calls = seed_calls(have, best, "items")
        head = f"{best} ({have[best][0]['mixture']}) {_fmt(value[best])}"
        lines.append("accuracy across distillations graded on the same items: "
                     + _called(head, {f"{d} ({_fmt(value[d])})": t for d, t in calls.items()}))
    return lines
