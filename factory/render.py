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
    funnel.caption = (f"{', '.join(stats['scripted_teacher'])} rows come from the scripted reference teacher (the "
                      "generator's worked steps), not a model" if stats.get("scripted_teacher") else None)

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

    cur = Table(title="curation" + ("" if stats.get("curated") else " (not run yet: factory curate)"))
    cur.add_column("measure")
    cur.add_column("value", justify="right")
    d = stats["duplicate_rates"]
    cur.add_row("duplicates removed: exact / near / semantic", f"{_pct(d['exact'])} / {_pct(d['near'])} / {_pct(d['semantic'])}")
    outside = stats.get("outside_duplicates") or {"samples": 0, "by_source": {}}
    if outside["samples"]:
        cur.add_row("duplicates of other jobs / corpus files removed", str(outside["samples"]))
        for name, n in outside["by_source"].items():
            cur.add_row(f"  {name}", str(n))
    cur.add_row("contaminated samples", str(stats["contamination"]["samples"]))
    for name, n in stats["contamination"]["by_benchmark"].items():
        cur.add_row(f"  {name}", str(n))
    div = stats["diversity"]
    for k, v in div.items():
        cur.add_row(k.replace("_", " "), _num(v))
    cur.add_row("reviewer agreement (Krippendorff's alpha, interval)", _num(stats["reviewer_alpha"]))
    for name, sig in (stats.get("signals") or {}).items():
        cur.add_row(f"signal {name}: samples / mean [min, max] / verdicts it decided",
                    f"{sig['samples']} / {_num(sig['mean'])} [{_num(sig['min'])}, {_num(sig['max'])}] / "
                    f"{sig['verdicts_decided']}")
    quorum = (stats.get("signals") or {}).get("quorum")
    if quorum and quorum["samples"]:  # the quorum signal: 1.0 where replacement reviews restored it
        restored = round((quorum["mean"] or 0) * quorum["samples"])
        cur.add_row("below decision.min_reviews: samples / restored by replacement reviews / dropped (stage quorum) "
                    "/ to the adjudicator or with no valid review",
                    f"{quorum['samples']} / {restored} / {quorum['verdicts_decided']} / "
                    f"{quorum['samples'] - restored - quorum['verdicts_decided']}")
    cur.add_row("accepted view rows", str(stats["accepted_view_rows"]))
    cur.add_row("mean quality score", _num(stats["mean_quality_score"]))
    for k, a in stats["acceptance_by_template"].items():
        cur.add_row(f"acceptance, template {k}", f"{a['accepted']}/{a['samples']} ({_pct(a['rate'])})")
    for k, a in stats["acceptance_by_model"].items():
        cur.add_row(f"acceptance, model {k}", f"{a['accepted']}/{a['samples']} ({_pct(a['rate'])})")
    tables.append(cur)

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


def recipes_table(recipes: list[dict]) -> Table:
    table = Table(title="recipes")
    for col in ("recipe", "roles (default template)", "options", "review axes", "from", "what it makes"):
        table.add_column(col)
    for r in recipes:
        roles = "\n".join(f"{name}: {template}" for name, template in r["roles"].items())
        axes = ", ".join(r["axes"]) if r.get("axes") else "-"
        table.add_row(r["name"], roles, ", ".join(r["options"]) or "-", axes, r["source"], r["description"])
    return table


def print_all(console: Console, tables: list[Table]) -> None:
    for t in tables:
        console.print(t)


def _num(v) -> str:
    return "-" if v is None else f"{v:g}"


def _pct(v) -> str:
    return "-" if v is None else f"{v:.1%}"


def _styled(*parts):
    """A tree label from plain parts and (text, style) parts: the CLI's own emphasis as
    rich styles, never markup, so the stored text in it is shown literally."""
    from rich.text import Text

    from factory.literal_console import visible

    return Text.assemble(*((visible(p), "") if isinstance(p, str) else (visible(p[0]), p[1]) for p in parts))


def explain_view(story: dict):
    """A readable tree of one sample's story."""
    import json

    from rich.tree import Tree

    tree = Tree(_styled((f"sample {story['sample_id']}", "bold"),
                        f" of job {story['job']['name']} ({story['job']['fingerprint']}), recipe {story['job']['recipe']}"))
    tree.add(f"seed #{story['seed']['seed_index']}: {json.dumps(story['seed']['payload'])}")
    g = story["generation"]
    if g["template"]:
        tree.add(f"generated by {g['template']} on {g['model']['model']} ({g['completion_tokens']} tokens, "
                 f"seed {g['request_seed']})")
    tree.add("text: " + story["text"][:400].replace("\n", " ") + ("..." if len(story["text"]) > 400 else ""))
    if story["rule_checks"]:
        tree.add(f"rule checks: {json.dumps(story['rule_checks'])}")
    if story.get("likelihood"):
        lk = story["likelihood"]
        model = lk["model"]["model"] if isinstance(lk.get("model"), dict) else lk.get("model")
        tree.add(f"likelihood: mean log-probability {lk['mean_logprob']:.3f} per token over {lk['n_tokens']} "
                 f"tokens under {model}")
    for gate in story.get("gates") or []:
        shown = {k: v for k, v in gate.items() if k not in ("gate", "result") and v is not None}
        tree.add(f"gate {gate['gate']}: {gate['result']}" + (f" {json.dumps(shown)}" if shown else ""))
    if story["exact_duplicate_of"]:
        tree.add(_styled((f"exact duplicate of {story['exact_duplicate_of']}", "red")))
    if story["solutions"]:
        sol = tree.add("solutions")
        for s in story["solutions"]:
            sol.add(f"{s['kind']} #{s['attempt']}: {s['status']} answer={s['answer']} correct={s['correct']} "
                    f"{s['status_reason'] or ''}")
    if story["verification"]:
        v = story["verification"]
        tree.add(f"verification: {'verified' if v['verified'] else 'not verified'}: {v['reason']}")
    reviews = tree.add(f"{len(story['reviews'])} review(s)")
    for r in story["reviews"]:
        reviews.add(f"#{r['reviewer_index']}: overall {r['overall']} {json.dumps(r['scores'])} {r['critique']!r}")
    for d in story["dropped_outputs"]:
        tree.add(_styled((f"dropped {d['role']} output", "yellow"), f": {d['reason']}"))
    if story["verdict"]:
        v = story["verdict"]
        tree.add(_styled("verdict: ", (str(v["decision"]), "bold"), f" by {v['stage']}: {v['reason']}"))
    for d in story["dedup"]:
        tree.add(f"{d['method']} duplicate cluster {d['cluster_id']}: {'kept' if d['kept'] else 'removed'} "
                 f"(similarity {d['similarity']})")
    for c in story["contamination"]:
        match = (f"paraphrase (cosine {c['similarity']:.2f}) of" if c.get("method") == "semantic"
                 else f"{c['ngram_size']}-gram {c['ngram']!r} in")
        tree.add(_styled(("contaminated", "red"), f": {match} {c['benchmark']} row {c['benchmark_row']}"))
    if story.get("outside_duplicate"):
        o = story["outside_duplicate"]
        where = f"sample {o['other_sample_id']}" if o["kind"] == "job" else f"row {o['other_row']}"
        tree.add(_styled(("removed", "yellow"), f": {o['method']} duplicate (similarity {o['similarity']}) of "
                         f"{o['kind']} {o['against_name']} ({o['against']}) {where}: {o['snippet']!r}"))
    if story["quality"]:
        tree.add(f"quality score {story['quality']['score']}: {json.dumps(story['quality']['components'])}")
    calls = tree.add(f"{len(story.get('calls') or [])} model call(s): what each sent and got back")
    for c in story.get("calls") or []:
        call = calls.add(f"{c['call']} (request {c['request_key'][:16]}, {c['prompt_tokens']} + "
                         f"{c['completion_tokens']} tokens, finish {c['finish_reason']})")
        if not isinstance(c["messages"], list):
            call.add("messages: not stored (cached before completions kept their messages)")
        for m in c["messages"] or []:
            call.add(_styled((f"[{m.get('role')}] ", "bold"), str(m.get("content"))))
        call.add(_styled(("[output] ", "bold"), c["raw_output"]))
    tree.add(f"in the accepted view: {'yes' if story['in_accepted_view'] else 'no'}")
    return tree
