"""`factory report`: one self-contained HTML page (inline CSS, inline SVG, no script, no
URL) describing one job's dataset quality, from the same SQL as `factory stats` plus a few
row-level queries (lengths, clusters, contamination hits). Reads only."""
from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jinja2

from factory.report_charts import BAR, MUTED, hbars, histogram
from stores.curation import last_pass_config
from stores.report import contamination_rows, largest_clusters, quality_bins, spread_bins, word_counts
from stores.stats import job_stats

EXAMPLE_CHARS = 300   # enough to see why two texts were called duplicates
TOP_CLUSTERS = 5
MAX_HITS = 50         # contamination rows listed; the per-benchmark counts cover the rest
LENGTH_BINS = 20

def _truncate(text: str) -> str:
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS].rstrip() + " …"


def _pct(n: float, d: float) -> str:
    return f"{100 * n / d:.0f}%" if d else "–"


def length_bins(rows: list[tuple[int, int, int]]) -> list[tuple[int, int, int, int]]:
    """(fewest words, most words, samples, of them in the accepted view) per bin: at most
    LENGTH_BINS bins of equal width over word_counts' rows (`factory browse` links each)."""
    low, high = rows[0][0], rows[-1][0]
    width = max(1, -(-(high - low + 1) // LENGTH_BINS))
    bins = [[low + i * width, low + (i + 1) * width - 1, 0, 0] for i in range((high - low) // width + 1)]
    for n, total, acc in rows:
        bins[(n - low) // width][2] += total
        bins[(n - low) // width][3] += acc
    return [tuple(b) for b in bins]


def length_label(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}–{hi}"


def length_chart(con, job: str):
    """Words per sample (\\w+ runs, as the diversity stat counts them): all samples behind
    the ones in the accepted view. Grouped by exact count in SQL, binned here."""
    rows = word_counts(con, job)
    if not rows:
        return None
    bins = length_bins(rows)
    return histogram([length_label(lo, hi) for lo, hi, _, _ in bins],
                     [("all samples", [b[2] for b in bins], MUTED), ("accepted view", [b[3] for b in bins], BAR)],
                     x_title="words per sample")


def quality_chart(con, job: str):
    """The composite score in [0, 1], 20 bins of 0.05: all scored samples behind accepted ones."""
    rows = quality_bins(con, job, 20)
    if not rows:
        return None
    everything, accepted = [0] * 20, [0] * 20
    for b, total, acc in rows:
        everything[b], accepted[b] = total, acc
    return histogram([f"{b / 20:.2f}" for b in range(20)],
                     [("all scored", everything, MUTED), ("accepted view", accepted, BAR)],
                     x_title="quality score (bin start)")


def spread_chart(con, job: str):
    """Per sample, max - min of the reviewers' overall scores, in half-point bins."""
    rows = spread_bins(con, job)
    if not rows:
        return None
    counts = dict(rows)
    bins = range(0, rows[-1][0] + 1)
    return histogram([f"{b / 2:g}" for b in bins], [("samples", [counts.get(b, 0) for b in bins], BAR)],
                     x_title="review spread (max − min overall score)")


def score_charts(scores: dict) -> list[dict]:
    """One histogram per rubric axis, every integer value between the lowest and highest seen."""
    charts = []
    for axis, data in sorted(scores.items()):
        if axis == "overall":
            continue
        hist = {int(k): n for k, n in data["histogram"].items()}
        values = range(min(hist), max(hist) + 1)
        charts.append({"axis": axis, "mean": data.get("mean"), "stddev": data.get("stddev"),
                       "svg": histogram([str(v) for v in values], [("reviews", [hist.get(v, 0) for v in values], BAR)],
                                        x_title=f"{axis} score", width=420, height=200)})
    return charts


def funnel_chart(stats: dict):
    f = stats["funnel"]
    steps = [("seeds", f["seeds"]), ("generated", f["generated"]), ("exact duplicates", f["exact_duplicates"]),
             ("reviewed", f["reviewed"]), ("adjudicated", f["adjudicated"]), ("accepted", f["accepted"]),
             ("rejected", f["rejected"]), ("dropped", f["dropped"])]
    if stats["curated"]:
        steps.append(("accepted after curation", stats["accepted_view_rows"]))
    return hbars([(name, n, f"{n:,} ({_pct(n, f['seeds'])} of seeds)") for name, n in steps])


def acceptance_chart(groups: dict):
    if not groups:
        return None
    return hbars([(k, g["rate"], f"{g['accepted']:,} / {g['samples']:,} = {_pct(g['accepted'], g['samples'])}")
                  for k, g in groups.items()], max_value=1.0)


def clusters(con, job: str) -> list[dict]:
    out: dict[tuple, dict] = {}
    for method, cluster_id, size, sample_id, kept, similarity, text in largest_clusters(con, job, TOP_CLUSTERS):
        cluster = out.setdefault((method, cluster_id), {"method": method, "cluster_id": cluster_id, "size": size,
                                                        "examples": []})
        cluster["examples"].append({"sample_id": sample_id, "kept": kept, "similarity": similarity,
                                    "text": _truncate(text)})
    return list(out.values())


def contamination_hits(con, job: str) -> dict:
    total, rows = contamination_rows(con, job, MAX_HITS)
    config = last_pass_config(con, job)
    benchmarks = [b.get("name") or b["path"] for b in config.get("decontaminate", [])] if config else []
    return {"total": total, "rows": rows, "benchmarks": benchmarks}


def verification_chart(verification: dict | None):
    if not verification or not verification["failure_reasons"]:
        return None
    failed = verification["checked"] - verification["verified"]
    return hbars([(why, n, f"{n:,} ({_pct(n, failed)} of failures)")
                  for why, n in verification["failure_reasons"].items()], width=820, label_width=380)


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    source = resources.files("factory").joinpath("report.html.jinja").read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.from_string(source)


def distill_runs(con, job: str) -> list[dict]:
    """The distillation runs trained on this job's data, grouped per distillation (newest
    run per mixture), each group with the sentence `factory runs` prints."""
    from factory.distill.compare import latest_per_mixture, verdict
    from stores.distill import runs_of_job

    return [{"distill": name, "runs": runs, "verdict": verdict(runs)}
            for name, runs in latest_per_mixture(runs_of_job(con, job)).items()]


# The latest `factory probe` (kept here, not in report.html.jinja: one small section that
# the page gains before its end when the job was probed).
PROBE_SECTION = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string("""
<h2 id="probe">Judge probe</h2>
<p>Latest <code>factory probe</code> ({{ p.created_at[:19] }}, {{ s.samples }} accepted samples, {{ s.pairs }} pairs):
the decision score ranks an original above its corruption in <b>{{ fmt(s.pairwise_accuracy) }}</b> of pairs
(95% CI {{ fmt(s.pairwise_accuracy_ci[0]) }}–{{ fmt(s.pairwise_accuracy_ci[1]) }}; 0.5 is a coin flip).</p>
<table><tr><th>signal</th>{% for k in kinds %}<th class="n">{{ k }}</th>{% endfor %}</tr>
{% for signal in signals %}{% set cells = s.by_signal[signal] %}<tr><td>{{ signal }}</td>
{% for k in kinds %}<td class="n">{{ fmt(cells.get(k, {}).get("pairwise_accuracy")) }}</td>{% endfor %}</tr>
{% endfor %}</table>
<p class="note">Pairwise accuracy per corruption kind (ties count 0.5); {{ s.intervals }}.</p>
""")


def probe_section(con, job: str) -> str:
    from stores.probe import latest_probe

    latest = latest_probe(con, job)
    if latest is None:
        return ""
    s, config = latest["summary"], latest["config"]  # JSON objects come back key-sorted: lists keep the order
    kinds = [k for k in config["kinds"] if s["by_kind"].get(k, {}).get("pairs")] + ["all"]
    signals = [n for n in config["signals"] if n in s["by_signal"]]
    return PROBE_SECTION.render(p=latest, s=s, kinds=kinds, signals=signals,
                                fmt=lambda v: "–" if v is None else f"{v:.2f}")


# Human labels against the verdict (`factory probe --gold`), beside the corruption probe: the
# probe says whether the score ranks good above bad; this says whether people agree with it.
GOLD_SECTION = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string("""
<h2 id="gold">The judge against people</h2>
<p>{{ line }}.</p>
{% if v.disagreements %}<table><tr><th>sample</th><th>labeller</th><th>people</th><th>verdict</th></tr>
{% for d in v.disagreements[:20] %}<tr><td><code>{{ d.sample_id }}</code></td><td>{{ d.labeller }}</td>
<td>{{ d.people }}</td><td>{{ d.model }} ({{ d.stage }})</td></tr>{% endfor %}</table>
<p class="note">The first {{ [v.disagreements | length, 20] | min }} of {{ v.disagreements | length }} disagreements;
<code>factory explain SAMPLE</code> or <code>factory browse</code> (flag: disagree) shows each.</p>{% endif %}
""")


def gold_section(con, job: str) -> str:
    from factory.probing.gold import gold
    from factory.probing.render import gold_line
    from stores.labels import label_count

    if not label_count(con, job):
        return ""
    summary = gold(con, job)
    return GOLD_SECTION.render(line=gold_line(summary), v=summary["verdict"])


def render_report(con, job: str | None) -> str:
    stats = job_stats(con, job)
    fp = stats["job"]
    page = _render_page(con, stats, fp)
    section = probe_section(con, fp) + gold_section(con, fp)
    return page.replace("</body>", section + "</body>", 1) if section else page


def _render_page(con, stats: dict, fp: str) -> str:
    return _template().render(
        distills=distill_runs(con, fp),
        s=stats, f=stats["funnel"], pct=_pct,
        funnel_svg=funnel_chart(stats), score_charts=score_charts(stats["scores"]),
        length_svg=length_chart(con, fp), quality_svg=quality_chart(con, fp), spread_svg=spread_chart(con, fp),
        clusters=clusters(con, fp), hits=contamination_hits(con, fp),
        verification_svg=verification_chart(stats["verification"]),
        template_svg=acceptance_chart(stats["acceptance_by_template"]),
        model_svg=acceptance_chart(stats["acceptance_by_model"]),
    )


def write_report(con, job: str | None, path) -> str:
    """Render first, then write a temporary file beside the target and rename it into place:
    a failure leaves no file or the previous report, never half of one."""
    html = render_report(con, job)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(html)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a report is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(path)
