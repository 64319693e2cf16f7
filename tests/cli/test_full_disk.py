"""A disk that fills during `factory run`: one line naming the file it could not write,
exit 1, the database stays readable with only whole batches in it, and a rerun after space
is freed resumes and ends with the rows of an uninterrupted run.

The disk is a small tmpfs (root only: mount needs CAP_SYS_ADMIN). 1 MiB holds the fake
job's first ~260 of 400 seeds (measured: the WAL reaches 1,035,525 bytes), so the disk
fills mid-job, after some batches committed and before the last."""
import os
import subprocess
import uuid

import duckdb
import pytest
import yaml

from support import fake_job
from factory.cli import main

N = 400
SMALL, LARGE = "1m", "64m"
CONTENT = {
    "seeds": "SELECT seed_id, seed_index, payload FROM seeds",
    "samples": "SELECT sample_id, text, duplicate_of FROM samples",
    "reviews": "SELECT review_id, sample_id, scores, overall FROM reviews",
    "verdicts": "SELECT sample_id, decision, stage, reason FROM verdicts",
    "drops": "SELECT drop_id, role, reason FROM drops",
    "done": "SELECT seed_index FROM done_seeds",
}


def snapshot(db) -> dict:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {name: sorted(con.execute(sql).fetchall(), key=repr) for name, sql in CONTENT.items()}
    finally:
        con.close()


def _mount(where, size: str, remount: bool = False) -> subprocess.CompletedProcess:
    options = f"remount,size={size}" if remount else f"size={size}"
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    where = tmp_path / f"disk-{uuid.uuid4().hex[:8]}"
    where.mkdir()
    mounted = _mount(where, SMALL)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


@pytest.mark.slow  # 400 seeds run twice on a tmpfs: 134 s at load 13 (tests/unit/test_transaction.py: ENOSPC in a write)
def test_full_disk_is_one_line_and_a_rerun_resumes(tmp_path, small_disk, capsys):
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(fake_job(num_samples=N, execution={"executor": "local", "batch_size": 20})))
    reference = tmp_path / "reference.duckdb"
    assert main(["run", str(job), "--db", str(reference), "--quiet"]) == 0
    capsys.readouterr()

    db = small_disk / "f.duckdb"
    assert main(["run", str(job), "--db", str(db), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: no space left on device writing {db}.wal: free space and rerun to resume"], err

    # readable, and only whole batches: every seed row has its done mark and no more
    partial = snapshot(db)
    done = {i for (i,) in partial["done"]}
    assert 0 < len(done) < N, "the disk must fill mid-job, or the test proves nothing"
    assert {row[1] for row in partial["seeds"]} == done
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM completions").fetchone()[0] > 0

    assert _mount(small_disk, LARGE, remount=True).returncode == 0  # space freed
    assert main(["run", str(job), "--db", str(db), "--quiet"]) == 0
    assert f"({len(done)} done before)" in capsys.readouterr().err
    assert snapshot(db) == snapshot(reference)
