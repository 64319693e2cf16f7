"""The real page in headless Chromium (the system's /usr/bin/chromium, driven by Playwright;
no browser download): `factory browse` as a subprocess on a real job's database; list,
filter, open a sample by keyboard, label three samples with the a / r keys, check the rows in
DuckDB (the server does not hold the file between requests), reload and see them; a hostile
sample text runs nothing; a screenshot per page, each checked not to be one colour."""
from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

CHROMIUM = "/usr/bin/chromium"
HOSTILE = '<script>window.__pwned = 1</script>"><img src=x onerror="window.__pwned = 2">'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(job_db, ids):
    db, job = job_db
    con = duckdb.connect(str(db))
    con.execute("UPDATE samples SET text = ? || text WHERE sample_id = ?", [HOSTILE, ids[1]])
    con.close()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "factory.cli", "browse", "--db", str(db), "--port", str(port),
                             "--labeller", "tess"], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    try:
        line = proc.stderr.readline()  # printed once uvicorn listens: the event this waits on
        assert f"http://127.0.0.1:{port}/" in line, line + proc.stderr.read()
        yield f"http://127.0.0.1:{port}", db, job
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def colours(page, png: Path) -> int:
    """Distinct colours in a PNG, counted by the browser itself (a canvas), up to 2."""
    data = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
    page.goto("about:blank")
    return page.evaluate("""async (src) => {
        const img = new Image(); img.src = src; await img.decode();
        const c = document.createElement('canvas'); c.width = img.width; c.height = img.height;
        const g = c.getContext('2d'); g.drawImage(img, 0, 0);
        const d = g.getImageData(0, 0, c.width, c.height).data;
        for (let i = 4; i < d.length; i += 4)
            if (d[i] !== d[0] || d[i + 1] !== d[1] || d[i + 2] !== d[2]) return 2;
        return 1; }""", data)


@pytest.mark.slow  # headless Chromium: 52 s + 12 s setup at load 10-16 (tests/browse/test_pages.py checks the pages over HTTP)
def test_list_filter_open_label_three_by_keyboard(server, ids, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium`")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    url, db, job = server
    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

        def shot(name: str) -> None:
            path = tmp_path / f"{name}.png"
            page.screenshot(path=str(path), full_page=True)
            shots.append(path)

        page.goto(url + "/")
        rows = page.locator("tr.row")
        assert rows.count() == len(ids)
        shot("list")

        page.select_option("select[name=verdict]", "accept")
        with page.expect_navigation():
            page.click("#apply")
        verdicts = page.locator("td.verdict").all_inner_texts()
        assert verdicts and set(verdicts) == {"accept"}
        shot("filtered")

        page.goto(url + "/")  # back to every sample: j selects the first row, Enter opens it
        page.keyboard.press("j")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.inner_text("#sample-id") == f"sample {ids[0]}"
        shot("sample")

        labelled = []
        for key in ("a", "r", "a"):
            sid = page.inner_text("#sample-id").removeprefix("sample ")
            labelled.append((sid, {"a": "accept", "r": "reject"}[key]))
            with page.expect_navigation(url=lambda u: "/sample/" in u and sid not in u, timeout=8000):
                page.keyboard.press(key)
        assert [s for s, _ in labelled] == ids[:3]
        assert page.evaluate("window.__pwned") is None and not dialogs  # ids[1] carried the hostile text

        con = duckdb.connect(str(db), read_only=True)  # the server holds no lock between requests
        stored = con.execute("SELECT sample_id, decision, labeller, source FROM labels ORDER BY sample_id").fetchall()
        con.close()
        assert stored == sorted((s, d, "tess", "browse") for s, d in labelled)

        page.goto(url + "/?flag=labelled")
        page.reload()
        assert sorted(page.locator("td.mine").all_inner_texts()) == sorted(d for _, d in labelled)
        page.goto(f"{url}/sample/{ids[1]}")
        assert page.inner_text("#my-label") == "your label: reject"
        assert "<script>" in page.inner_text("#text")  # shown as text
        shot("labelled")

        page.goto(url + "/funnel")
        assert int(page.inner_text("#funnel-accepted")) == len(verdicts)
        shot("funnel")
        for path in shots:
            assert colours(page, path) == 2, f"{path.name} is one colour"
        browser.close()
