"""Stats say which signals were measured and how many verdicts each gate decided (issue 11, item 4)."""
from support import fake_job, query

from factory.api import stats
from factory.pipeline import run_job
from factory.spec import parse_job


def test_stats_summarize_each_signal_and_the_verdicts_its_gate_decided(tmp_path):
    db = tmp_path / "s.duckdb"
    run_job(parse_job(fake_job(num_samples=10, decision={"min_likelihood": -1.0})), db=db)
    signals = stats(db)["signals"]
    assert "likelihood" in signals and signals["likelihood"]["samples"] > 0
    decided = query(db, "SELECT count(*) FROM verdicts WHERE stage = 'likelihood'")[0][0]
    assert signals["likelihood"]["verdicts_decided"] == decided
    low, high = query(db, "SELECT min(value), max(value) FROM signals WHERE signal = 'likelihood'")[0]
    assert signals["likelihood"]["min"] == round(low, 4) and signals["likelihood"]["max"] == round(high, 4)
