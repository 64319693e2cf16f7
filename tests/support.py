"""Helpers the tests share: `from support import fake_job, query, run_job_yaml`.

tests/ is on sys.path through pyproject.toml's `pythonpath`, so this module (and fakes.py)
import by name; conftest.py keeps only fixtures and hooks. Keep this module light: it is
imported by every test file at collection, so a heavy import (torch, ray, a model) belongs
inside the helper that needs it.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

from factory.distill.spec import StudentSpec, TinyStudentSpec

REPO = Path(__file__).resolve().parents[1]

# hidden 32, 1 layer: 1.6 M parameters (1.57 M of them the tied 49,152 x 32 embedding);
# a step of 8 short rows takes ~20 ms on 2 cores.
SMALL = StudentSpec(kind="tiny", tiny=TinyStudentSpec(hidden_size=32, layers=1, heads=2, intermediate_size=64))

# `factory run` with the fake backend registered (it lives in this test's process only),
# paused before its third batch until the test creates the release file: the run is still
# going while the test reads, whatever the machine's speed, and two batches are committed;
# <release>.held appears when it pauses (the snapshot no longer changes until the release).
HELD_RUN = """
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
import fakes
fakes.install()
import factory.pipeline as pipeline
from factory.cli import main

release, batches, real = Path(sys.argv[3]), [], pipeline.run_batch

def held(ctx, indices):
    batches.append(indices)
    if len(batches) == 3:
        release.with_name(release.name + ".held").touch()
    deadline = time.monotonic() + {deadline}
    while len(batches) == 3 and not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return real(ctx, indices)

pipeline.run_batch = held
sys.exit(main(["run", sys.argv[1], "--db", sys.argv[2], "--quiet"]))
"""


MATH_ROLES = ("problem_writer", "generator", "long_solver", "short_solver", "reviewer", "adjudicator")


def fake_job(**overrides) -> dict:
    """A 12-seed tinystories job on the fake backend (tests/fakes.py); keys given replace the
    default's whole value."""
    job = {
        "name": "fake-job", "recipe": "tinystories", "num_samples": 12, "seed": 3, "reviewers": 3,
        "roles": {
            "generator": {"backend": "fake", "model": "fake", "template": "tinystories/generator@1"},
            "reviewer": {"backend": "fake", "model": "fake", "template": "tinystories/reviewer@1"},
            "adjudicator": {"backend": "fake", "model": "fake", "template": "tinystories/adjudicator@1"},
        },
        "execution": {"executor": "local", "batch_size": 4},
    }
    for key, value in overrides.items():
        job[key] = value
    return job


def write_job(directory: Path, job: dict, name: str = "job.yaml") -> Path:
    """job written as YAML to directory/name; its path."""
    path = Path(directory) / name
    path.write_text(yaml.safe_dump(job))
    return path


class Ran(NamedTuple):
    path: Path  # the job's YAML
    db: Path
    result: object  # factory.run's RunResult


def run_job_yaml(directory: Path, job: dict, db: str = "f.duckdb", name: str = "job.yaml", **run) -> Ran:
    """Write job as YAML in directory and run it in this process with factory.run (the path
    `factory run JOB.yaml` takes, without the CLI's rendering); run: limit, address, progress."""
    import factory

    path = write_job(directory, job, name)
    db_path = Path(directory) / db
    return Ran(path, db_path, factory.run(str(path), db=db_path, **run))


def until(condition, what: str, deadline_s: float = 120) -> None:
    """Poll condition every 50 ms; fail naming `what` after deadline_s (a cutoff for a stuck
    test, not an expected time: tests wait on events, never on the clock)."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what} after {deadline_s} s")
        time.sleep(0.05)


def query(db, sql: str) -> list[tuple]:
    """Rows of a read-only query on a database file (the connection closed after)."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def dump(db) -> dict:
    """Every base table's rows (as sorted reprs): "nothing written" is dump(before) == dump(after)."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_type = 'BASE TABLE' ORDER BY 1").fetchall()]
        return {t: sorted(map(repr, con.execute(f'SELECT * FROM "{t}"').fetchall())) for t in tables}
    finally:
        con.close()


def wait_for_committed_batches(db, proc, at_least: int, deadline_s: float = 240) -> int:
    """Poll a running job's snapshot (stores/snapshot.py) until at_least batches are
    committed: a kill test kills on this event, never after a fixed sleep."""
    import duckdb

    from stores.snapshot import snapshot_path

    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        assert proc.poll() is None, "the job ended before the kill: the test would prove nothing"
        snap = snapshot_path(db)
        if snap.exists():
            try:
                con = duckdb.connect(str(snap), read_only=True)
                try:
                    done = con.execute("SELECT count(DISTINCT batch_id) FROM done_seeds").fetchone()[0]
                finally:
                    con.close()
            except duckdb.Error:
                done = 0  # replaced while we opened it: look again
            if done >= at_least:
                return done
        time.sleep(0.1)  # a poll interval, not a timing assumption
    raise AssertionError(f"no committed batch in {deadline_s} s")
