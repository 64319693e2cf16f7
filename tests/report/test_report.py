"""`factory report` on a real store (fake backend, 30 seeds, curated), with planted hostile
text, a near duplicate and a contamination hit; then rendered by headless Chromium and the
screenshot's bar pixels counted, so a chart that does not draw fails the test."""
import json
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from support import fake_job
from factory.curation.run import curate
from factory.keys import content_hash
from factory.pipeline import run_job
from factory.report import render_report, write_report
from factory.report_charts import BAR
from factory.spec import CurationSpec, parse_job
from stores import Store, open_database
from stores.stats import job_stats

CHROMIUM = "/usr/bin/chromium"
HOSTILE = "<script>alert(1)</script>"
HOSTILE_MODEL = "<img src=x onerror=alert(2)>"
COPIES = 6  # the hostile text 6 times: the largest duplicate cluster, so it is on the page


def _plant(con, job: str, index: int, text: str, duplicate_of=None, model="fake") -> str:
    sid = f"planted{index}"
    con.execute("INSERT INTO seeds VALUES (?, ?, ?, '{}')", [f"seed-{sid}", job, index])
    con.execute("""INSERT INTO samples (sample_id, job, seed_id, seed_index, text, content_hash, duplicate_of, model)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                [sid, job, f"seed-{sid}", index, text, content_hash(text), duplicate_of, json.dumps({"model": model})])
    con.execute("INSERT INTO verdicts (sample_id, job, decision, stage, reason) VALUES (?, ?, ?, ?, 'planted')",
                [sid, job, "reject" if duplicate_of else "accept", "exact_duplicate" if duplicate_of else "reviewers"])
    return sid


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    db = tmp / "f.duckdb"
    spec = parse_job(fake_job(num_samples=30))
    run_job(spec, db=db)
    job = spec.fingerprint
    with Store(db) as store:
        con = store.con
        uncurated = render_report(con, None)
        first = _plant(con, job, 1000, HOSTILE, model=HOSTILE_MODEL)
        for i in range(1, COPIES):
            _plant(con, job, 1000 + i, HOSTILE, duplicate_of=first, model=HOSTILE_MODEL)
        # A near duplicate: one word of an accepted story changed (Jaccard of 3-word shingles ~0.87).
        story = con.execute("""SELECT s.text FROM samples s JOIN verdicts v USING (sample_id)
                               WHERE s.job = ? AND v.decision = 'accept' ORDER BY s.seed_index LIMIT 1""",
                            [job]).fetchone()[0]
        _plant(con, job, 2000, story.replace("little dog", "little pup", 1))
        # A benchmark row sharing one 8-gram ("liked to <3 seed words> every") with that story.
        words = re.search(r"liked to (.+?) every day", story).group(1)
        bench = tmp / "bench.jsonl"
        bench.write_text(json.dumps({"question": f"A kid liked to {words} every morning, said the teacher."}) + "\n")
        curate(con, job, "tinystories",
               CurationSpec(semantic=False, decontaminate=[{"path": str(bench), "name": "planted-bench"}]))
    out = tmp / "out"
    out.mkdir()
    con = open_database(db, read_only=True)
    try:
        path = write_report(con, None, out / "report.html")
        stats = job_stats(con, None)
    finally:
        con.close()
    return {"path": Path(path), "html": Path(path).read_text(encoding="utf-8"), "stats": stats,
            "uncurated": uncurated, "tmp": tmp}


def test_uncurated_sections_say_so(report):
    assert "not curated yet: run factory curate" in report["uncurated"]


def test_one_self_contained_file(report):
    html = report["html"]
    assert sorted(p.name for p in report["path"].parent.iterdir()) == ["report.html"]  # no temp file left
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert "http://" not in html and "https://" not in html
    for tag in ("<link", "<img", "<iframe", "@import", "url("):
        assert tag not in html.lower()
    # funnel, one per rubric axis, lengths, quality, review spread, per template, per model
    axes = [a for a in report["stats"]["scores"] if a != "overall"]
    assert len(axes) == 4 and html.count("<svg") == 6 + len(axes)


def test_hostile_text_is_escaped(report):
    html = report["html"]
    assert "<script" not in html and HOSTILE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert HOSTILE_MODEL not in html and "&lt;img src=x onerror=alert(2)&gt;" in html  # an SVG label


def test_sections_show_the_data(report):
    html = report["html"]
    assert f"exact duplicates</b> · {COPIES} samples" in html  # the largest cluster comes first
    assert "near duplicates</b> · 2 samples" in html and "little pup" in html
    assert "planted-bench" in html and "liked to" in html  # the contamination hit and its n-gram
    assert "no verification for this job" in html
    assert "not curated yet" not in html


def _png_pixels(path: Path) -> np.ndarray:
    """A minimal PNG decoder (8-bit RGB/RGBA, not interlaced: what Chromium writes), so the
    test needs no Pillow. Sub and Up rows are vectorised; Average and Paeth run per byte."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", data[pos + 8:pos + 21])
        elif kind == b"IDAT":
            idat.append(data[pos + 8:pos + 8 + length])
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, f"unsupported PNG {header}"
    bpp = 3 if colour == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(height, width * bpp + 1)
    out = np.zeros((height, width * bpp), np.uint8)
    prev = np.zeros(width * bpp, np.uint8)
    for y in range(height):
        kind, row = raw[y, 0], raw[y, 1:]
        if kind == 0:
            cur = row.copy()
        elif kind == 1:
            cur = np.cumsum(row.reshape(width, bpp), axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2:
            cur = row + prev
        else:
            cur, up = bytearray(row.tobytes()), prev.tobytes()
            for i in range(len(cur)):
                a = cur[i - bpp] if i >= bpp else 0
                b, c = up[i], (up[i - bpp] if i >= bpp else 0)
                if kind == 3:
                    pred = (a + b) >> 1
                else:
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[i] = (cur[i] + pred) & 255
            cur = np.frombuffer(bytes(cur), np.uint8)
        out[y] = prev = cur
    return out.reshape(height, width, bpp)[:, :, :3]


def test_chromium_renders_the_charts(report):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: the report test renders the page in headless Chromium; "
                    "install it with `apt-get install -y chromium`")
    work = report["tmp"] / "chromium"
    shot = work / "shot.png"
    work.mkdir(exist_ok=True)
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         f"--user-data-dir={work / 'profile'}", "--window-size=1200,3000", f"--screenshot={shot}",
         report["path"].as_uri()],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    shutil.rmtree(work / "profile", ignore_errors=True)
    pixels = _png_pixels(shot).astype(np.int16)
    target = np.array([int(BAR[i:i + 2], 16) for i in (1, 3, 5)], np.int16)
    bar_pixels = int((np.abs(pixels - target).max(axis=2) <= 3).sum())  # +-3: colour rounding
    # ten charts of bars in this colour cover ~100,000 px at 1200 x 3000; 2,000 is one small chart
    assert bar_pixels > 2000, f"only {bar_pixels} pixels of {BAR}: the charts did not render"
