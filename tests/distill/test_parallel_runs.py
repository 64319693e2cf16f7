"""`parallel_runs: N` (issue 22, item 5): a distillation's runs train side by side in
processes of their own and give the very runs one at a time gives (ids, weights' results,
evaluation rows), recorded by the parent only; what it cannot run in a process (stories,
KD/GKD, Ray Train workers) is one line, exit 2; a worker whose parent died stops."""
from __future__ import annotations

import os

import psutil
import pytest

from support import query
from factory.cli import main
from factory.distill import parallel_runs
from factory.distill.parallel_runs import ParentGone, _stop_if_orphaned
from factory.distill.run import RunTask, run_distill
from factory.distill.spec import load_distill
from factory.pipeline import run_job
from factory.spec import parse_job
from .test_reference_teacher import math_job
from .test_trained_tokenizer import spec_file as tokenizer_spec_file


@pytest.fixture(scope="module")
def ref_db(tmp_path_factory):
    """40 built-in problems solved by the scripted reference teacher."""
    db = tmp_path_factory.mktemp("parallel") / "r.duckdb"
    run_job(parse_job(math_job(db, num_samples=40, programs=0)), db=db)
    return db


def spec_file(tmp_path, db, **over):
    """test_trained_tokenizer's distillation (short and long, a trained tokenizer) with two
    seeds and one torch thread, so that a run trains alike in any process."""
    training = {"epochs": 2, "batch_size": 4, "checkpoint_every": 2, "max_length": 256, "threads": 1}
    return tokenizer_spec_file(tmp_path, db, **{"name": "par", "rows": 16, "seeds": [1, 2], "training": training,
                                                **over})


class Stages:
    def __init__(self):
        self.lines = []

    def stage(self, text):
        self.lines.append(text)

    def step(self, step, total, loss): ...
    def done(self): ...


def _runs(db):
    return query(db, "SELECT run_id, mixture, value, json_extract(training, '$.final_loss') FROM runs "
                     "WHERE distill = 'par' ORDER BY run_id")


def _evals(db):
    return query(db, "SELECT run_id, item_id, output, correct FROM run_evals ORDER BY run_id, item_id")


def test_two_at_a_time_gives_the_runs_one_at_a_time_gives(tmp_path, ref_db, student_cache, monkeypatch):
    monkeypatch.setenv("FACTORY_CACHE", str(student_cache))
    one, two = tmp_path / "one", tmp_path / "two"
    for d in (one, two):
        d.mkdir()
        (d / "r.duckdb").write_bytes(ref_db.read_bytes())
    serial = run_distill(load_distill(spec_file(one, one / "r.duckdb")), progress=Stages())
    stages, started = Stages(), []
    real = parallel_runs.train_in_processes

    def watched(train_one, tasks, *args):
        started.extend(t.mixture.name for t in tasks)
        return real(train_one, tasks, *args)

    monkeypatch.setattr(parallel_runs, "train_in_processes", watched)
    parallel = run_distill(load_distill(spec_file(two, two / "r.duckdb", parallel_runs=2)), progress=stages)
    assert "training 4 runs, 2 at a time" in stages.lines
    assert started == ["long", "long", "short", "short"]  # the longest runs start first
    assert psutil.Process().children(recursive=True) == []  # workers and the resource tracker are gone
    # the same runs, in the same order, with the same results: one torch thread each, so bit for bit
    assert [(s.run_id, s.mixture, s.seed, s.status) for s in parallel] == \
           [(s.run_id, s.mixture, s.seed, s.status) for s in serial]
    assert {s.status for s in parallel} == {"trained"} and len({s.run_id for s in parallel}) == 4
    assert _runs(two / "r.duckdb") == _runs(one / "r.duckdb")
    assert _evals(two / "r.duckdb") == _evals(one / "r.duckdb") and len(_evals(one / "r.duckdb")) == 4 * 6
    # a rerun trains nothing
    again = run_distill(load_distill(spec_file(two, two / "r.duckdb", parallel_runs=2)), progress=Stages())
    assert {s.status for s in again} == {"already done"}


@pytest.mark.parametrize("over, names", [
    ({"task": "stories", "mixtures": ["all"], "evaluation": {"source": "held_out"}}, "stories"),
    ({"training": {"method": "kd", "kd": {}}, "student": {"kind": "tiny"}}, "kd"),
    ({"training": {"workers": 2}}, "training.workers"),
])
def test_what_cannot_train_in_a_process_is_one_line_and_exit_2(tmp_path, over, names, capsys):
    db = tmp_path / "r.duckdb"
    spec = spec_file(tmp_path, db, parallel_runs=2, **over)
    assert main(["distill", str(spec)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "parallel_runs" in err and names in err
    assert not db.exists()


def test_parallel_runs_is_out_of_the_fingerprint(tmp_path, ref_db):
    a = load_distill(spec_file(tmp_path, ref_db))
    b = load_distill(spec_file(tmp_path, ref_db, parallel_runs=3))
    assert a.fingerprint == b.fingerprint and b.parallel_runs == 3


def test_a_worker_whose_parent_is_gone_stops_at_the_next_step():
    keep_going = _stop_if_orphaned(os.getppid())
    assert keep_going(1, 10, 0.5) is None
    with pytest.raises(ParentGone, match="stopped at step 3 of 10"):
        _stop_if_orphaned(os.getppid() + 1)(3, 10, 0.5)


def test_a_run_is_expected_to_cost_its_steps_times_its_batch_times_its_mean_row():
    from types import SimpleNamespace as NS

    def task(lengths, **training):
        rows = [(i, NS(prompt="p" * n, target="")) for i, n in enumerate(lengths)]
        training = NS(**{"batch_size": 4, "grad_accumulation": 1, "max_steps": None, "epochs": 1, **training})
        return RunTask(NS(training=training), None, None, NS(rows=rows), "r", None)

    assert task([10] * 8).expected_characters() == 2 * 4 * 10  # one epoch: 2 steps of 4 rows of 10
    assert task([10] * 8, epochs=3, max_steps=5).expected_characters() == 5 * 4 * 10  # max_steps binds
    assert task([10] * 8, grad_accumulation=2).expected_characters() == 1 * 8 * 10
    assert task([30] * 8).expected_characters() > task([10] * 8).expected_characters()
    assert task([]).expected_characters() == 0
