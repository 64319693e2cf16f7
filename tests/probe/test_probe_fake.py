"""`factory probe` end to end on the fake backend: rows, stats, report, CLI and API."""
import json

import pytest

import fakes
from support import fake_job, query, run_job_yaml

import factory
from factory.cli import main
from factory.probing.metrics import wilson
from factory.probing.run import NothingToProbe

LOW = json.dumps({"grammar": 1, "creativity": 1, "consistency": 1, "plot": 1, "age_group": "3-5", "critique": "bad"})
KINDS = 6  # tinystories: the generic five and seed_words_removed
HELD_OUT = 5  # the held-out kinds (issue 21), reviewed too and reported apart


@pytest.fixture
def made(tmp_path):
    """A fake tinystories job run to the end: its YAML and its database."""
    def make(**overrides):
        path, db, _ = run_job_yaml(tmp_path, fake_job(**{"num_samples": 80, **overrides}))
        return path, db
    return make


def accepted(db) -> int:
    return query(db, "SELECT count(*) FROM verdicts WHERE decision = 'accept'")[0][0]


def test_a_judge_that_ranks_originals_higher_scores_one(made):
    path, db = made()
    n = min(12, accepted(db))
    assert n >= 10
    fakes.CALLS.clear()
    # Only the corruptions reach the model (the originals' reviews are the job's own, cached):
    # every one of them gets the lowest score.
    fakes.script(*[LOW] * (n * (KINDS + HELD_OUT) * 3))
    summary = factory.probe(path, db, samples=12, seed=5)
    assert summary["samples"] == n and summary["notes"] == []
    held = summary["held_out"]
    assert summary["model_calls"] == len(fakes.CALLS) == (summary["pairs"] + held["pairs"]) * 3
    assert set(held["by_kind"]) == {"sentence_repeated", "instruction_echo", "other_story", "typos",
                                    "dropped_function_words"}
    assert held["pairwise_accuracy"] == 1.0 and sum(v["pairs"] for v in held["by_kind"].values()) == held["pairs"]
    assert summary["pairwise_accuracy"] == 1.0 and summary["auc"] == 1.0
    assert summary["by_signal"]["reviewers.overall"]["all"]["pairwise_accuracy"] == 1.0
    if "likelihood" in summary["by_signal"]:  # the likelihood signal, where this version has it
        assert summary["by_signal"]["likelihood"]["all"]["pairs"] == summary["pairs"]
    assert set(summary["by_kind"]) == {"sentence_shuffle", "word_salad", "truncation", "repetition_loop", "splice",
                                       "seed_words_removed"}
    low = summary["pairwise_accuracy_ci"][0]
    # Was Wilson at p = 1 over the ~70 pairs (low > 0.9), as if the 6 pairs of one original
    # were independent (issue 22). Every pair won: every cluster resample gives 1, so the
    # interval is Wilson over the n originals, the effective size when their pairs move together.
    assert low == pytest.approx(wilson(n, n)[0], abs=1e-4) and 0.7 < low < 1.0
    # rows: one run, one item per scored text, lineage of each review call
    runs = query(db, "SELECT run_id, job, config, summary FROM probe_runs")
    assert len(runs) == 1 and json.loads(runs[0][3])["pairwise_accuracy"] == 1.0
    items = query(db, "SELECT kind, text, scores, lineage FROM probe_items")
    assert len(items) == n + summary["pairs"] + held["pairs"]
    assert sum(k == "original" for k, *_ in items) == n
    for kind, text, scores, lineage in items:
        assert json.loads(scores)["decision"] is not None
        calls = json.loads(lineage)
        assert [c["slot"] for c in calls] == [0, 1, 2] and all(c["role"] == "reviewer" and c["request_key"]
                                                               for c in calls)
    # the same probe again: all cache hits, the same numbers, a second run row
    again = factory.probe(path, db, samples=12, seed=5)
    assert again["model_calls"] == 0 and again["by_signal"] == summary["by_signal"]
    assert again["run_id"] != summary["run_id"]


def test_a_random_judge_writes_rows_stats_and_report(made, capsys, tmp_path):
    pool = {"pool": [{"backend": "fake", "model": "fake"}, {"backend": "fake", "model": "fake-b"}],
            "template": "tinystories/reviewer@1"}
    job = fake_job(num_samples=80)
    job["roles"] = {**job["roles"], "reviewer": pool}
    path, db = made(roles=job["roles"])
    assert main(["probe", str(path), "--db", str(db), "--samples", "10", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"pairwise_accuracy", "by_kind", "by_signal"} <= set(out)
    assert 0.0 <= out["pairwise_accuracy"] <= 1.0
    signals = set(out["by_signal"])
    assert {"decision", "reviewers.overall", "reviewers.grammar", "rules", "rule_gate",
            "reviewer[fake:fake].overall", "reviewer[fake:fake-b].overall"} <= signals
    for cells in out["by_signal"].values():
        for cell in cells.values():
            if cell["pairwise_accuracy"] is not None:
                assert cell["pairwise_ci"][0] <= cell["pairwise_accuracy"] <= cell["pairwise_ci"][1]
    # by name, printed: the tables and the headline
    assert main(["probe", "fake-job", "--db", str(db), "--samples", "10"]) == 0
    printed = capsys.readouterr().out
    assert "decision score per corruption kind" in printed and "pairs (95% CI" in printed
    assert factory.stats(db)["probe"]["pairs"] == out["pairs"]
    assert main(["stats", "--db", str(db)]) == 0
    assert "judge probe" in capsys.readouterr().out
    html = factory.report(db, out=tmp_path / "r.html").read_text()
    assert 'id="probe"' in html and "Judge probe" in html


def test_fewer_than_ten_accepted_says_so_and_runs(made, capsys):
    path, db = made(num_samples=8)
    n = accepted(db)
    assert 0 < n < 10
    assert main(["probe", str(path), "--db", str(db)]) == 0
    err = capsys.readouterr().err
    assert f"has {n} accepted samples (fewer than 10): probing all {n}" in err
    assert query(db, "SELECT count(DISTINCT sample_id) FROM probe_items")[0][0] == n


def test_no_accepted_sample_is_one_line_and_exit_1(made, capsys):
    path, db = made(num_samples=6, decision={"accept_mean": 10, "max_spread": 0, "reject_mean": 10})
    assert accepted(db) == 0
    assert main(["probe", str(path), "--db", str(db)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no accepted samples" in err[0] and "nothing to probe" in err[0]
    with pytest.raises(NothingToProbe):
        factory.probe(path, db)
    assert query(db, "SELECT count(*) FROM probe_runs")[0][0] == 0


def test_bad_arguments_are_one_line(made, capsys, tmp_path):
    path, db = made(num_samples=6)
    assert main(["probe", str(path), "--db", str(db), "--kinds", "word_salad,nonsense"]) == 2
    assert "--kinds: 'nonsense' is not a corruption of recipe tinystories" in capsys.readouterr().err
    assert main(["probe", "no-such-job", "--db", str(db)]) == 1
    assert "no job 'no-such-job'" in capsys.readouterr().err
    assert main(["probe", str(path), "--db", str(tmp_path / "missing.duckdb")]) == 1
    assert "no database at" in capsys.readouterr().err
