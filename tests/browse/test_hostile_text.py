"""Model text is hostile: stored `<script>`, an attribute break-out with an onerror image and
a markdown link come back escaped on every page that shows them, never as markup."""
from __future__ import annotations

from urllib.parse import quote

import duckdb
import pytest
from starlette.testclient import TestClient

from factory.browse.app import make_app
from stores.labels import checked, put_labels

PORT = 8766
SCRIPT = "<script>window.__pwned = 1</script>"
BREAKOUT = '"><img src=x onerror="window.__pwned = 2">'
MARKDOWN = "[click me](javascript:window.__pwned=3)"
HOSTILE = f"Once upon a time {SCRIPT} then {BREAKOUT} and {MARKDOWN} end."


@pytest.fixture
def hostile_db(job_db, ids):
    db, job = job_db
    con = duckdb.connect(str(db))
    con.execute("UPDATE samples SET text = ? WHERE sample_id = ?", [HOSTILE, ids[0]])
    con.execute("UPDATE reviews SET critique = ?, label = ? WHERE sample_id = ?", [HOSTILE, BREAKOUT, ids[0]])
    con.execute("UPDATE seeds SET payload = json_object('words', ?) WHERE seed_id = "
                "(SELECT seed_id FROM samples WHERE sample_id = ?)", [HOSTILE, ids[0]])
    con.execute("""UPDATE completions SET messages = json_array(json_object('role', 'user', 'content', ?))
                   WHERE request_key IN (SELECT request_key FROM reviews WHERE sample_id = ?)""", [HOSTILE, ids[0]])
    con.close()
    put_labels(db, [checked(ids[0], BREAKOUT, "reject", note=HOSTILE)], source="browse")
    return db, job


def _assert_inert(html: str) -> None:
    assert "<script>" not in html and "<img" not in html and "onerror=\"window" not in html
    assert 'href="javascript:' not in html and "<a href=\"javascript" not in html
    assert html.count("<script") == 1  # the page's own /static/browse.js


def test_hostile_text_is_escaped_everywhere(hostile_db, ids):
    db, _ = hostile_db
    con = duckdb.connect(str(db), read_only=True)
    reviews = con.execute("SELECT count(*) FROM reviews WHERE sample_id = ?", [ids[0]]).fetchone()[0]
    con.close()
    app = make_app(db, None, port=PORT, labeller="ann", peers=("testclient",))
    with TestClient(app, base_url=f"http://127.0.0.1:{PORT}") as c:
        sample = c.get(f"/sample/{ids[0]}").text
        _assert_inert(sample)
        assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in sample
        assert "&#34;&gt;&lt;img src=x onerror=&#34;window.__pwned = 2&#34;&gt;" in sample
        assert MARKDOWN in sample  # shown as the text it is, not as a link
        calls = sample[sample.index('<div id="calls">'):]
        calls = calls[:calls.index("<h2>")]
        assert calls.count("&lt;script&gt;window.__pwned = 1&lt;/script&gt;") == reviews > 0  # each review's message
        listing = c.get("/", params={"q": "upon a time <script>"}).text
        _assert_inert(listing)
        assert "&lt;script&gt;" in listing and 'value="upon a time &lt;script&gt;"' in listing
        error = c.get("/sample/" + quote(BREAKOUT))  # an id that is markup, echoed by the 404
        assert error.status_code == 404 and "&lt;img" in error.text
        _assert_inert(error.text)
