"""execution.batches_in_flight (factory/streaming.py): several batches' steps at once, the
same rows as one batch at a time, commits in batch order, hard budgets still hard."""
import threading

import pytest

from support import fake_job, query
from factory.calls import Budget, BudgetExceeded
from factory.pipeline import run_job
from factory.spec import JobError, parse_job

ROWS = {
    "seeds": "SELECT seed_id, seed_index, payload FROM seeds",
    "samples": "SELECT sample_id, text, content_hash, duplicate_of, rule_checks, request_key, completion_tokens, "
               "payload FROM samples",
    "reviews": "SELECT review_id, sample_id, scores, overall, label, critique, request_key FROM reviews",
    "verdicts": "SELECT sample_id, decision, stage, reason, mean_score, spread, n_reviews FROM verdicts",
    "drops": "SELECT drop_id, role, reason, raw_text, request_key FROM drops",
    "signals": "SELECT sample_id, signal, value, request_key FROM signals",
    "done": "SELECT seed_index, batch_id FROM done_seeds",
    "completions": "SELECT request_key, text, completion_tokens FROM completions",
}


def rows(db) -> dict:
    return {name: sorted(query(db, sql), key=repr) for name, sql in ROWS.items()}


def job(in_flight: int, **overrides) -> dict:
    return fake_job(num_samples=30, execution={"executor": "local", "batch_size": 3, "batches_in_flight": in_flight},
                    **overrides)


def test_three_batches_in_flight_give_the_rows_of_one_at_a_time(tmp_path):
    one, three = tmp_path / "one.duckdb", tmp_path / "three.duckdb"
    first = run_job(parse_job(job(1)), db=one)
    second = run_job(parse_job(job(3)), db=three)
    assert (first.seeds_processed, first.model_calls) == (second.seeds_processed, second.model_calls) == (30, 106)
    assert rows(one) == rows(three)
    # Exact dedup across batches was exercised: a duplicate whose first copy is in an earlier batch.
    across = query(three, """SELECT count(*) FROM samples d JOIN samples f ON d.duplicate_of = f.sample_id
                             WHERE d.seed_index // 3 <> f.seed_index // 3""")[0][0]
    assert across > 0


def test_math_with_batches_in_flight_gives_the_same_rows(tmp_path):
    """Programs run in the sandbox from several batch threads at once."""
    roles = {r: {"backend": "fake", "model": "fake"}
             for r in ("problem_writer", "generator", "long_solver", "short_solver", "reviewer", "adjudicator")}
    got = []
    for n in (1, 3):
        db = tmp_path / f"math{n}.duckdb"
        run_job(parse_job(fake_job(recipe="math", roles=roles, num_samples=12,
                                   execution={"executor": "local", "batch_size": 2, "batches_in_flight": n})), db=db)
        got.append({**rows(db), "verifications": sorted(query(db, "SELECT * FROM verifications"),
                                                        key=repr)})
    assert got[0] == got[1] and got[0]["verifications"]


def test_a_rerun_with_batches_in_flight_continues_a_job_and_adds_nothing(tmp_path):
    db = tmp_path / "job.duckdb"
    reference = tmp_path / "reference.duckdb"
    run_job(parse_job(job(1)), db=reference)
    run_job(parse_job(job(1)), db=db, limit=10)  # a first run of 10 seeds (4 batches, the last of 1)
    resumed = run_job(parse_job(job(3)), db=db)
    assert (resumed.seeds_done_before, resumed.seeds_processed) == (10, 20)
    assert rows(db)["samples"] == rows(reference)["samples"]
    assert run_job(parse_job(job(3)), db=db).model_calls == 0


def test_a_budget_stop_with_batches_in_flight_never_passes_the_cap(tmp_path):
    db = tmp_path / "job.duckdb"
    with pytest.raises(BudgetExceeded):
        run_job(parse_job(job(3, max_tokens_budget=20_000)), db=db)
    spent = query(db, "SELECT sum(prompt_tokens + completion_tokens) FROM completions")[0][0]
    assert 0 < spent <= 20_000
    done = sorted(i for (i,) in query(db, "SELECT seed_index FROM done_seeds"))
    assert done == list(range(len(done))) and len(done) % 3 == 0  # whole batches, in order


class SpyCondition(threading.Condition):
    """Says when a thread starts waiting on it: the test acts on that event, not a sleep."""

    def __init__(self):
        super().__init__()
        self.waiting = threading.Event()

    def wait(self, timeout=None):
        self.waiting.set()
        return super().wait(timeout)


def test_a_refused_caller_with_nothing_in_flight_waits_for_other_reservations():
    spy = SpyCondition()
    budget = Budget(1000, {}, _lock=spy)
    assert budget.reserve("generator", 900)  # another batch's request in flight
    got = []
    waiter = threading.Thread(target=lambda: got.append(budget.reserve("reviewer", 300, wait=True)))
    waiter.start()
    assert spy.waiting.wait(timeout=30)  # it did not stop: 900 reserved may come back
    budget.settle("generator", 900, 100)
    waiter.join(timeout=30)
    assert got == [True] and budget.reserved["reviewer"] == 300


def test_a_refusal_is_final_when_nothing_reserved_could_make_room():
    budget = Budget(1000, {}, spent={"generator": 900})
    assert budget.reserve("reviewer", 300, wait=True) is False  # nothing in flight anywhere
    capped = Budget(1000, {"reviewer": 200})
    assert capped.reserve("generator", 500)
    # over the reviewer's cap even if the generator's request settled at no cost: no wait
    assert capped.reserve("reviewer", 250, wait=True) is False


def test_batches_in_flight_must_be_a_positive_count():
    with pytest.raises(JobError, match="batches_in_flight"):
        parse_job(job(0))
