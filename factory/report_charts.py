"""Inline SVG charts for the HTML report, drawn in Python: no JavaScript, no files.

Every label goes through html.escape (template names, drop reasons and benchmark names come
from configs and model output). Charts return markupsafe.Markup so the autoescaping page
template embeds them as they are. No xmlns attribute: inline SVG in HTML needs none, and the
page then holds no URL at all.
"""
from __future__ import annotations

from html import escape

from markupsafe import Markup

BAR = "#2b6cb0"     # the main series; the report test counts pixels of this colour
MUTED = "#cbd5e0"   # the background series (e.g. all samples behind the accepted ones)
INK = "#2d3748"


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3g}"


def _nice_max(value: float) -> float:
    """The smallest round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 x 10^k) at or above
    value, for the top gridline: the tallest bar then fills 3/4 of the height or more."""
    if value <= 0:
        return 1.0
    step = 1.0
    while step * 10 <= value:
        step *= 10
    while step > value:
        step /= 10
    return next(m * step for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if m * step >= value)


def _short(label: str, limit: int) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def histogram(labels: list[str], series: list[tuple[str, list[float], str]], *, x_title: str = "",
              width: int = 560, height: int = 230, hrefs: list[list[str | None]] | None = None) -> Markup:
    """Vertical bars, one band per label. Series are drawn over each other, first at the back:
    meant for nested counts (accepted within all), so every series stays visible. hrefs (per
    series, per bar; `factory browse` passes them, the report none): each bar a link."""
    left, right, top, bottom = 48, 10, 26, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(labels), 1)
    top_value = _nice_max(max((v for _, values, _ in series for v in values), default=0))
    band = plot_w / n
    out = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    for frac in (0, 0.5, 1):  # three gridlines: enough to read counts off, few enough to stay quiet
        y = top + plot_h * (1 - frac)
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e2e8f0"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(top_value * frac)}</text>')
    for s, (name, values, colour) in enumerate(series):
        inset = band * (0.1 + 0.08 * s)  # later series slightly narrower, so the back one frames them
        for i, value in enumerate(values):
            h = plot_h * value / top_value
            x, y = left + i * band + inset, top + plot_h - h
            tip = escape(f"{name} {labels[i]}: {_fmt(value)}")
            bar = (f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(band - 2 * inset, 1):.1f}" height="{h:.1f}" '
                   f'fill="{colour}"><title>{tip}</title></rect>')
            href = hrefs[s][i] if hrefs else None
            out.append(f'<a href="{escape(href)}" data-n="{value:g}">{bar}</a>' if href and value else bar)
    every = max(1, -(-n // 14))  # at most ~14 tick labels across 500 px of 11 px text
    for i, label in enumerate(labels):
        if i % every == 0:
            out.append(f'<text x="{left + (i + 0.5) * band:.1f}" y="{top + plot_h + 15}" text-anchor="middle">'
                       f'{escape(_short(label, 9))}</text>')
    if x_title:
        out.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle" class="axis">'
                   f'{escape(x_title)}</text>')
    x = left
    for name, _, colour in series if len(series) > 1 else []:
        out.append(f'<rect x="{x}" y="6" width="12" height="12" fill="{colour}"/>'
                   f'<text x="{x + 16}" y="16">{escape(name)}</text>')
        x += 24 + 7 * len(name)
    out.append("</svg>")
    return Markup("".join(out))


def hbars(rows: list[tuple[str, float, str]], *, max_value: float | None = None, colour: str = BAR,
          width: int = 640, label_width: int = 200) -> Markup:
    """Horizontal bars: (label, value, note). The note (e.g. "9 / 25 = 36%") follows the bar."""
    row_h, note_w = 24, 150
    bar_w = width - label_width - note_w
    top_value = max_value or max((v for _, v, _ in rows), default=0) or 1
    height = row_h * len(rows) + 4
    out = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    for i, (label, value, note) in enumerate(rows):
        y = 2 + i * row_h
        w = bar_w * min(value, top_value) / top_value
        out.append(f'<text x="{label_width - 8}" y="{y + 16}" text-anchor="end"><title>{escape(label)}</title>'
                   f'{escape(_short(label, label_width // 6))}</text>')  # ~6 px per 11 px character
        out.append(f'<rect x="{label_width}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="{colour}"/>')
        out.append(f'<text x="{label_width + w + 6:.1f}" y="{y + 16}">{escape(note)}</text>')
    out.append("</svg>")
    return Markup("".join(out))
