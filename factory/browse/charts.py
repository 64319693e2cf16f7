"""The funnel page's histograms: each one `factory report` draws (stores/report.py's bins, the
report's own SVG from factory/report_charts.py), plus the verdicts' mean score, with every
bar a link to the list filtered to the samples behind it (stores/browse.py has a filter for
each bin). Server-drawn SVG: no script, nothing fetched.

data() is the numbers, computed once per state of the database (cache.py): the word counts
read every text (seconds at 1M samples), so the page pays that once per snapshot, not per view.
"""
from __future__ import annotations

from factory.report import length_bins, length_label
from factory.report_charts import BAR, MUTED, histogram
from stores.browse import tables, verdict_score_bins
from stores.report import quality_bins, spread_bins, word_counts
from stores.stats import job_stats

QUALITY_BINS = 20  # the report's: 0.05 wide


def data(con, job: str) -> dict:
    stats = job_stats(con, job)
    score_bins = verdict_score_bins(con, job)
    words = word_counts(con, job)
    return {"funnel": stats["funnel"], "scores": stats["scores"], "verdict_scores": score_bins,
            "lengths": length_bins(words) if words else [],
            "quality": quality_bins(con, job, QUALITY_BINS) if "quality_scores" in tables(con) else [],
            "spread": spread_bins(con, job)}


def charts(numbers: dict, link) -> list[dict]:
    """[{title, note, svg}] in the report's order; link(**filters) is a list URL."""
    out = []
    bins = numbers["verdict_scores"]
    if bins:
        out.append({"id": "chart-verdict-score", "title": "verdict mean score", "note": "samples; a bar lists them",
                    "svg": histogram([f"{b}–{b + 1}" for b, _ in bins], [("samples", [n for _, n in bins], BAR)],
                                     x_title="mean score of the sample's reviews",
                                     hrefs=[[link(min_score=b, max_score=b + 0.9999) for b, _ in bins]])})
    for axis, d in sorted(numbers["scores"].items()):
        if axis == "overall" or not d.get("histogram"):
            continue
        hist = {int(k): n for k, n in d["histogram"].items()}
        values = range(min(hist), max(hist) + 1)
        out.append({"id": f"chart-axis-{axis}", "title": f"{axis} score",
                    "note": "reviews; a bar lists the samples with a review of that score",
                    "svg": histogram([str(v) for v in values], [("reviews", [hist.get(v, 0) for v in values], BAR)],
                                     x_title=f"{axis} score", width=420, height=200,
                                     hrefs=[[link(axis=axis, axis_of="review", min_axis=v, max_axis=v)
                                             for v in values]])})
    if numbers["lengths"]:
        lengths = numbers["lengths"]
        out.append({"id": "chart-length", "title": "words per sample", "note": "samples; the accepted view in front",
                    "svg": histogram([length_label(lo, hi) for lo, hi, _, _ in lengths],
                                     [("all samples", [b[2] for b in lengths], MUTED),
                                      ("accepted view", [b[3] for b in lengths], BAR)], x_title="words per sample",
                                     hrefs=[[link(min_words=lo, max_words=hi) for lo, hi, _, _ in lengths],
                                            [link(min_words=lo, max_words=hi, flag="accepted_view")
                                             for lo, hi, _, _ in lengths]])})
    if numbers["quality"]:
        every, accepted = [0] * QUALITY_BINS, [0] * QUALITY_BINS
        for b, total, acc in numbers["quality"]:
            every[b], accepted[b] = total, acc
        out.append({"id": "chart-quality", "title": "quality score", "note": "scored samples; the accepted view in front",
                    "svg": histogram([f"{b / QUALITY_BINS:.2f}" for b in range(QUALITY_BINS)],
                                     [("all scored", every, MUTED), ("accepted view", accepted, BAR)],
                                     x_title="quality score (bin start)",
                                     hrefs=[[link(quality_bin=b) for b in range(QUALITY_BINS)],
                                            [link(quality_bin=b, flag="accepted_view") for b in range(QUALITY_BINS)]])})
    if numbers["spread"]:
        counts = dict(numbers["spread"])
        spread = range(0, numbers["spread"][-1][0] + 1)
        out.append({"id": "chart-spread", "title": "review spread", "note": "samples with 2+ reviews",
                    "svg": histogram([f"{b / 2:g}" for b in spread], [("samples", [counts.get(b, 0) for b in spread], BAR)],
                                     x_title="review spread (max − min overall score)",
                                     hrefs=[[link(spread_bin=b) for b in spread]])})
    return out
