"""The browse app through Starlette's TestClient on a real job's database: list, filters,
sort, pages, the sample page, labelling, the funnel, and the fences (peer, Host, token,
origin)."""
from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from factory.browse.app import make_app

PORT = 8765
BASE = f"http://127.0.0.1:{PORT}"


def token_of(html: str) -> str:
    return re.search(r'name="token" value="([^"]+)"', html).group(1)


def test_list_filters_and_sort(client, job_db, query):
    db, job = job_db
    page = client.get("/")
    assert page.status_code == 200
    assert len(re.findall(r'<tr class="row"', page.text)) == query(db, "SELECT count(*) FROM samples")[0][0]
    verdicts = dict(query(db, "SELECT decision, count(*) FROM verdicts GROUP BY decision"))
    for decision, n in verdicts.items():
        got = client.get("/", params={"verdict": decision, "job": job})
        assert len(re.findall(r'<tr class="row"', got.text)) == n
        assert set(re.findall(r'class="verdict (\w+)"', got.text)) == {decision}
    word = query(db, "SELECT split_part(text, ' ', 2) FROM samples ORDER BY seed_index LIMIT 1")[0][0]
    found = client.get("/", params={"q": word})
    n = query(db, "SELECT count(*) FROM samples WHERE text ILIKE ?", [f"%{word}%"])[0][0]
    assert len(re.findall(r'<tr class="row"', found.text)) == n > 0
    top = client.get("/", params={"sort": "score", "verdict": "accept"}).text
    scores = [float(x) for x in re.findall(r'<td>(\d+\.\d\d)</td>', top)]
    assert scores == sorted(scores, reverse=True)
    low = client.get("/", params={"min_score": 100}).text
    assert 'id="empty"' in low


def test_pages(client, job_db, query, monkeypatch):
    from stores import browse

    db, _ = job_db
    n = query(db, "SELECT count(*) FROM samples")[0][0]
    monkeypatch.setattr(browse, "PAGE", 5)  # pages of 5, the last one holding the rest
    first = client.get("/")
    assert len(re.findall(r'<tr class="row"', first.text)) == 5 and 'id="next-page"' in first.text
    last = client.get("/", params={"offset": 5 * ((n - 1) // 5)})
    assert len(re.findall(r'<tr class="row"', last.text)) == n - 5 * ((n - 1) // 5)
    assert 'id="next-page"' not in last.text


@pytest.mark.parametrize("params", [{"sort": "text; DROP TABLE samples"}, {"verdict": "maybe"},
                                    {"min_score": "x"}, {"offset": "-1x"}, {"flag": "evil"}])
def test_bad_filters_are_400_not_sql(client, params):
    r = client.get("/", params=params)
    assert r.status_code == 400 and 'id="error"' in r.text


def test_sample_page_shows_the_explain_story(client, ids, job_db, query):
    from factory.api import explain

    db, _ = job_db
    story = explain(ids[0], db)
    r = client.get(f"/sample/{ids[0]}", params={"pos": 0})
    assert r.status_code == 200
    assert story["sample_id"] in r.text and 'id="label-form"' in r.text
    for review in story["reviews"]:
        assert (review["critique"] or "") .replace("'", "&#39;").replace('"', "&#34;")[:30] in r.text
    assert story["verdict"]["stage"] in r.text and "generation (lineage)" in r.text
    raw = query(db, "SELECT count(*) FROM reviews r JOIN completions c USING (request_key) WHERE r.sample_id = ?",
                [ids[0]])[0][0]
    assert r.text.count("<td>review ") == raw > 0  # each review's raw output, from the completions cache
    for call in story["calls"]:  # and the messages each call sent, escaped as the page escapes text
        for m in call["messages"]:
            assert m["content"].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") \
                .replace("'", "&#39;").replace('"', "&#34;") in r.text
    assert client.get("/sample/no-such").status_code == 404


def test_label_post_stores_a_row_and_moves_on(client, ids, job_db, query):
    db, _ = job_db
    html = client.get(f"/sample/{ids[0]}", params={"pos": 0}).text
    r = client.post(f"/sample/{ids[0]}/label?pos=0", data={"token": token_of(html), "decision": "reject",
                                                             "score_grammar": "3", "note": "odd ending"})
    assert r.status_code == 303 and r.headers["location"].startswith("/go?pos=1")
    nxt = client.get(r.headers["location"])
    assert nxt.status_code == 303 and nxt.headers["location"].startswith(f"/sample/{ids[1]}")
    assert query(db, "SELECT sample_id, labeller, decision, scores, note, source FROM labels") == [
        (ids[0], "ann", "reject", '{"grammar": 3.0}', "odd ending", "browse")]
    again = client.get(f"/sample/{ids[0]}").text
    assert "your label: <b>reject</b>" in again
    listed = client.get("/", params={"flag": "labelled"}).text
    assert len(re.findall(r'<tr class="row"', listed)) == 1


def test_label_needs_the_token_and_this_origin(client, ids, job_db, query):
    db, _ = job_db
    token = token_of(client.get(f"/sample/{ids[0]}").text)
    assert client.post(f"/sample/{ids[0]}/label", data={"decision": "accept"}).status_code == 403
    assert client.post(f"/sample/{ids[0]}/label", data={"decision": "accept", "token": "x" * 43}).status_code == 403
    evil = client.post(f"/sample/{ids[0]}/label", data={"decision": "accept", "token": token},
                       headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403
    cross = client.post(f"/sample/{ids[0]}/label", data={"decision": "accept", "token": token},
                        headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    bad = client.post(f"/sample/{ids[0]}/label", data={"decision": "maybe", "token": token})
    assert bad.status_code == 400 and "decision must be accept or reject" in bad.text
    tables = query(db, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'labels'")[0][0]
    assert tables == 0 or query(db, "SELECT count(*) FROM labels") == [(0,)]
    ok = client.post(f"/sample/{ids[0]}/label", data={"decision": "accept", "token": token},
                     headers={"Origin": BASE})
    assert ok.status_code == 303


@pytest.mark.parametrize("host", ["evil.example", f"evil.example:{PORT}", "127.0.0.1:9999", "localhost", ""])
def test_other_host_headers_are_refused(client, host):
    assert client.get("/", headers={"Host": host}).status_code == 421


def test_localhost_host_is_served_with_a_strict_csp(client):
    r = client.get("/", headers={"Host": f"localhost:{PORT}"})
    assert r.status_code == 200 and "script-src 'self'" in r.headers["content-security-policy"]


def test_only_loopback_peers(job_db):
    db, _ = job_db
    app = make_app(db, None, port=PORT)  # the real peers: 127.0.0.1 and ::1; TestClient is "testclient"
    with TestClient(app, base_url=BASE) as c:
        assert c.get("/").status_code == 403


def test_funnel_links_to_the_samples_behind_each_number(client, job_db, query):
    db, job = job_db
    r = client.get("/funnel")
    assert r.status_code == 200
    accepted = re.search(r'id="funnel-accepted" href="([^"]+)">(\d+)<', r.text)
    href, n = accepted.group(1).replace("&amp;", "&"), int(accepted.group(2))
    assert n == query(db, "SELECT count(*) FROM verdicts WHERE decision = 'accept'")[0][0]
    assert len(re.findall(r'<tr class="row"', client.get(href).text)) == n


def test_a_database_made_before_signals_and_labels(job_db, ids, query):
    """Read as it is (read-only, not migrated): the list and the sample page work without the
    signals and labels tables; the first label migrates it."""
    import duckdb

    db, _ = job_db
    con = duckdb.connect(str(db))
    con.execute("DROP TABLE signals")
    con.execute("DROP TABLE labels")
    con.execute("DROP TABLE likelihood_cache")
    con.execute("DELETE FROM schema_migrations WHERE name IN ('m009_signals', 'm012_labels')")
    con.close()
    app = make_app(db, None, port=PORT, labeller="ann", peers=("testclient",))
    with TestClient(app, base_url=BASE, follow_redirects=False) as c:
        assert len(re.findall(r'<tr class="row"', c.get("/").text)) == len(ids)
        assert c.get("/", params={"flag": "labelled"}).text.count('<tr class="row"') == 0
        html = c.get(f"/sample/{ids[0]}").text
        assert 'id="no-labels"' in html
        assert c.post(f"/sample/{ids[0]}/label", data={"decision": "accept", "token": token_of(html)}).status_code == 303
    assert query(db, "SELECT sample_id, decision FROM labels") == [(ids[0], "accept")]


def test_a_database_held_by_another_process(client, job_db, ids, query):
    """Held read-write by a process that keeps no snapshot: pages say so in one line (503),
    a label is refused (409) and nothing is written; released, the same label is stored."""
    import subprocess
    import sys

    db, _ = job_db
    token = token_of(client.get(f"/sample/{ids[0]}").text)
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); sys.stdin.readline()", str(db)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        page = client.get("/")
        assert page.status_code == 503 and "in use by another process" in page.text
        refused = client.post(f"/sample/{ids[0]}/label", data={"decision": "accept", "token": token})
        assert refused.status_code == 409 and "not saved" in refused.text
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert query(db, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'labels'")[0][0] == 0 or \
        query(db, "SELECT count(*) FROM labels") == [(0,)]
    assert client.post(f"/sample/{ids[0]}/label", data={"decision": "accept", "token": token}).status_code == 303
    assert query(db, "SELECT sample_id, decision FROM labels") == [(ids[0], "accept")]


def test_sample_page_lists_its_duplicate_cluster(job_db, ids):
    import duckdb

    db, job = job_db
    con = duckdb.connect(str(db))
    con.execute("INSERT INTO dedup_clusters (job, method, cluster_id, sample_id, kept, similarity) "
                "VALUES (?, 'near', 'c1', ?, true, 0.9), (?, 'near', 'c1', ?, false, 0.9)", [job, ids[0], job, ids[1]])
    con.close()
    app = make_app(db, None, port=PORT, labeller="ann", peers=("testclient",))
    with TestClient(app, base_url=BASE) as c:
        html = c.get(f"/sample/{ids[0]}").text
    members = html.split('id="members"')[1].split("</table>")[0]
    assert f'href="/sample/{ids[1]}"' in members and ids[0] not in members


def test_axis_range_filter(client, job_db, query):
    db, job = job_db
    axis = query(db, "SELECT j.key FROM reviews r, json_each(r.scores) j LIMIT 1")[0][0]
    expected = query(db, """SELECT count(*) FROM (SELECT sample_id FROM reviews GROUP BY sample_id
                            HAVING avg((scores->>?)::DOUBLE) BETWEEN 3 AND 8)""", ["$." + axis])[0][0]
    got = client.get("/", params={"axis": axis, "min_axis": 3, "max_axis": 8}).text
    assert got.count('<tr class="row"') == expected
    assert client.get("/", params={"axis": "x') OR 1=1 --", "min_axis": 1}).status_code == 400
