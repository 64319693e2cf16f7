"""Browsing while `factory run` holds the database: the pages read the run's snapshot
(stores/snapshot.py) and say so; a label is refused until the run ends; after it ends the
pages read the database again, with its new rows (the summary is per state, not stale)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import duckdb
import yaml
from starlette.testclient import TestClient
from support import HELD_RUN, REPO, fake_job, until

from factory.browse.app import make_app
from stores.snapshot import snapshot_path

TESTS = Path(__file__).resolve().parents[1]
PORT = 8765
DEADLINE_S = 120  # a cutoff for a stuck run only: the test waits on the run's files


def snapshot_ids(db: Path) -> list[str]:
    con = duckdb.connect(str(snapshot_path(db)), read_only=True)
    try:
        return [r[0] for r in con.execute("SELECT sample_id FROM samples ORDER BY seed_index").fetchall()]
    finally:
        con.close()


def test_pages_read_the_snapshot_while_a_run_holds_the_database(tmp_path):
    db, release, job = tmp_path / "held.duckdb", tmp_path / "release", tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(fake_job(num_samples=9, execution={"executor": "local", "batch_size": 3})))
    run = subprocess.Popen([sys.executable, "-c", HELD_RUN.format(tests=str(TESTS), deadline=DEADLINE_S), job, db,
                            release], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    app = make_app(db, None, port=PORT, labeller="ann", peers=("testclient",))
    try:
        until(lambda: (tmp_path / "release.held").exists() or run.poll() is not None, "the run to pause at batch 3")
        assert run.poll() is None, run.communicate()[1]
        with duckdb.connect(":memory:") as probe:  # the run really holds the file: no other process may open it
            try:
                probe.execute(f"ATTACH '{db}' (READ_ONLY)")
                held = False
            except duckdb.Error as err:
                held = "lock" in str(err).lower()
        assert held
        ids = snapshot_ids(db)
        assert ids
        with TestClient(app, base_url=f"http://127.0.0.1:{PORT}", follow_redirects=False) as client:
            listed = client.get("/")
            assert listed.status_code == 200
            note = re.search(r'id="snapshot-note">([^<]+)<', listed.text).group(1)
            assert f"PID {run.pid}" in note and "snapshot" in note
            assert re.findall(r'<a class="open" href="/sample/([^?"]+)', listed.text) == ids
            assert f"of {len(ids)}<" in listed.text
            sample = client.get(f"/sample/{ids[0]}")
            assert sample.status_code == 200 and f"sample {ids[0]}" in sample.text
            assert f"PID {run.pid}" in sample.text and 'id="snapshot-note"' in sample.text
            funnel = client.get("/funnel")
            assert funnel.status_code == 200 and 'id="snapshot-note"' in funnel.text
            token = re.search(r'name="token" value="([^"]+)"', sample.text).group(1)
            refused = client.post(f"/sample/{ids[0]}/label", data={"decision": "accept", "token": token})
            assert refused.status_code == 409 and "not saved" in refused.text

            release.touch()
            assert run.wait(timeout=DEADLINE_S) == 0, run.communicate()[1]
            after = client.get("/")
            assert 'id="snapshot-note"' not in after.text
            con = duckdb.connect(str(db), read_only=True)
            n = con.execute("SELECT count(*) FROM samples").fetchone()[0]
            con.close()
            assert n > len(ids) and after.text.count('<tr class="row"') == n and f"of {n}<" in after.text
    finally:
        release.touch()
        if run.poll() is None:
            run.kill()
        run.wait()
