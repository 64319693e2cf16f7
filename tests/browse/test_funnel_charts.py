"""The funnel page's histograms (the report's, each bar a link): every bar's link lists the
samples behind it, counted against SQL of the rows; the list's keyset pages and its counts."""
from __future__ import annotations

import re
from html import unescape

import duckdb

def bars(html: str, chart: str) -> list[tuple[str, int]]:
    """(href, the bar's number) of every linked bar in one chart."""
    svg = html.split(f'id="{chart}"', 1)[1].split("</figure>", 1)[0]
    return [(unescape(h), int(float(n))) for h, n in re.findall(r'<a href="([^"]+)" data-n="([^"]+)">', svg)]


def rows(client, href: str) -> int:
    """Samples the list shows for href, following every next page."""
    n = 0
    while href:
        page = client.get(href)
        assert page.status_code == 200, page.text[:300]
        n += page.text.count('<tr class="row"')
        nxt = re.search(r'id="next-page" href="([^"]+)"', page.text)
        href = unescape(nxt.group(1)) if nxt else None
    return n


def test_each_bar_lists_the_samples_behind_it(client, job_db, query):
    db, job = job_db
    html = client.get("/funnel").text
    charts = set(re.findall(r'<figure class="chart" id="([^"]+)"', html))
    axes = [a for (a,) in query(db, "SELECT DISTINCT j.key FROM reviews r, json_each(r.scores) j "
                                    "WHERE j.type IN ('UBIGINT', 'BIGINT', 'DOUBLE')")]
    assert {"chart-verdict-score", "chart-length", "chart-spread"} | {f"chart-axis-{a}" for a in axes} <= charts
    # bars that count samples: the list behind each has as many rows as the bar says
    for chart in ("chart-verdict-score", "chart-length", "chart-spread"):
        linked = bars(html, chart)
        assert linked, chart
        for href, n in linked:
            assert rows(client, href) == n, (chart, href)
    # the length chart's bars add up to every sample, its accepted ones to the accepted view
    length = bars(html, "chart-length")
    assert sum(n for h, n in length if "accepted_view" not in h) == query(db, "SELECT count(*) FROM samples")[0][0]
    assert sum(n for h, n in length if "accepted_view" in h) == query(db, "SELECT count(*) FROM accepted")[0][0]
    # an axis bar counts reviews; its list is the samples with a review of that score
    axis = axes[0]
    for href, n in bars(html, f"chart-axis-{axis}"):
        value = int(re.search(r"min_axis=(\d+)", href).group(1))
        reviews, samples = query(db, """SELECT count(*), count(DISTINCT sample_id) FROM reviews
                                        WHERE (scores->>?)::DOUBLE = ?""", ["$." + axis, value])[0]
        assert n == reviews and rows(client, href) == samples


def test_a_chart_filter_stays_through_the_form_and_can_be_dropped(client, job_db, query):
    db, _ = job_db
    href, n = [b for b in bars(client.get("/funnel").text, "chart-length") if "accepted_view" not in b[0]][-1]
    page = client.get(href).text
    assert 'id="chart-filter"' in page and '<input type="hidden" name="min_words"' in page
    dropped = unescape(re.search(r'id="drop-chart-filter" href="([^"]+)"', page).group(1))
    assert "words" not in dropped and rows(client, dropped) == query(db, "SELECT count(*) FROM samples")[0][0]


def test_keyset_pages_walk_every_sample_once_in_order_and_back(client, job_db, query, monkeypatch):
    from stores import browse

    db, _ = job_db
    monkeypatch.setattr(browse, "PAGE", 4)
    seen, pages, href = [], [], "/"
    while href:
        page = client.get(href).text
        pages.append(page)
        seen += re.findall(r'<a class="open" href="/sample/([^?"]+)', page)
        nxt = re.search(r'id="next-page" href="([^"]+)"', page)
        href = unescape(nxt.group(1)) if nxt else None
    assert seen == [r[0] for r in query(db, "SELECT sample_id FROM samples ORDER BY seed_index, sample_id")]
    assert "after=" in unescape(re.search(r'id="next-page" href="([^"]+)"', pages[0]).group(1))
    total = len(seen)
    assert f"rows 1–4 of {total}" in pages[0] and f"rows 5–8 of {total}" in pages[1]
    back = unescape(re.search(r'id="prev-page" href="([^"]+)"', pages[2]).group(1))
    assert "before=" in back
    assert re.findall(r'<a class="open" href="/sample/([^?"]+)', client.get(back).text) == seen[4:8]
    # sorted by score, the pages still hold every sample once, best first
    by_score, href = [], "/?sort=score"
    while href:
        page = client.get(href).text
        by_score += [float(x) if x else float("-inf") for x in
                     re.findall(r'<td class="verdict[^"]*">[^<]*</td><td>[^<]*</td>\s*<td>([^<]*)</td>', page)]
        nxt = re.search(r'id="next-page" href="([^"]+)"', page)
        href = unescape(nxt.group(1)) if nxt else None
    assert len(by_score) == total and by_score == sorted(by_score, reverse=True)
    assert client.get("/", params={"after": "no-such-sample"}).status_code == 400


def test_counts_follow_the_database(client, job_db, query):
    """Exact under a verdict filter, a bound under others; recomputed when the file changes."""
    db, job = job_db
    accepted = query(db, "SELECT count(*) FROM verdicts WHERE decision = 'accept'")[0][0]
    assert f"of {accepted}<" in client.get("/", params={"verdict": "accept"}).text
    assert f"of at most {accepted}<" in client.get("/", params={"verdict": "accept", "q": "e"}).text
    con = duckdb.connect(str(db))
    con.execute("UPDATE verdicts SET decision = 'accept' WHERE sample_id = "
                "(SELECT sample_id FROM verdicts WHERE decision <> 'accept' ORDER BY sample_id LIMIT 1)")
    con.close()
    assert f"of {accepted + 1}<" in client.get("/", params={"verdict": "accept"}).text


def test_quality_bars_list_their_samples(client, job_db, query):
    """After curation (its quality_scores rows written here, one bin apart per seed, a score
    of exactly 1 in the last bin): each quality bar, all and accepted, lists its samples."""
    db, job = job_db
    con = duckdb.connect(str(db))
    con.execute("""INSERT INTO quality_scores (sample_id, job, score, components)
                   SELECT sample_id, job, CASE WHEN seed_index = 0 THEN 1.0 ELSE (seed_index % 7) / 20 + 0.01 END,
                          '{}' FROM samples""")
    con.close()
    html = client.get("/funnel").text
    linked = bars(html, "chart-quality")
    assert sum(n for h, n in linked if "accepted_view" not in h) == query(db, "SELECT count(*) FROM samples")[0][0]
    assert any("quality_bin=19" in h for h, _ in linked)  # the score of 1.0
    for href, n in linked:
        assert rows(client, href) == n, href
