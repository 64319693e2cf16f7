"""Textbook and math jobs through `factory run`: real Ray, the real SmolLM2 model, the
real sandbox, a real DuckDB file. Small: a few samples, short generations."""
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

pytestmark = pytest.mark.model
GSM8K = Path(__file__).resolve().parents[2].parent / "shared/data/gsm8k/train.jsonl"


def run(job: dict, tmp_path: Path) -> duckdb.DuckDBPyConnection:
    path, db = tmp_path / "job.yaml", tmp_path / "job.duckdb"
    path.write_text(yaml.safe_dump(job))
    done = subprocess.run([sys.executable, "-m", "factory.cli", "run", str(path), "--db", str(db), "--quiet"],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert done.returncode == 0, done.stderr
    stats = subprocess.run([sys.executable, "-m", "factory.cli", "stats", "--db", str(db), "--json"],
                           capture_output=True, text=True, timeout=60)
    assert stats.returncode == 0, stats.stderr
    return duckdb.connect(str(db), read_only=True), json.loads(stats.stdout)


def test_textbook_job_on_the_real_model(tmp_path):
    con, stats = run({"name": "tb", "recipe": "textbook", "num_samples": 2, "reviewers": 2,
                      "textbook": {"min_words": 40},
                      "roles": {"generator": {"sampling": {"max_tokens": 160}},
                                "reviewer": {"sampling": {"max_tokens": 120}}},
                      "execution": {"batch_size": 2}}, tmp_path)
    assert stats["funnel"]["seeds"] == 2
    texts = con.execute("SELECT text, rule_checks FROM samples").fetchall()
    drops = con.execute("SELECT count(*) FROM drops WHERE role = 'generator'").fetchone()[0]
    assert len(texts) + drops == 2
    for text, checks in texts:
        assert len(text.split()) >= 40 and json.loads(checks)["words"] > 0
    for (overall,) in con.execute("SELECT overall FROM reviews").fetchall():
        assert 0 <= overall <= 5


@pytest.mark.skipif(not GSM8K.exists(), reason="shared/data/gsm8k is not beside this checkout")
def test_math_job_from_gsm8k_on_the_real_model(tmp_path):
    seeds = tmp_path / "gsm8k_head.jsonl"
    seeds.write_text("".join(GSM8K.read_text().splitlines(keepends=True)[:2]))
    con, stats = run({"name": "m", "recipe": "math", "num_samples": 5, "reviewers": 1,
                      "math": {"source": "file", "seed_file": str(seeds), "programs": 2},
                      "roles": {"generator": {"sampling": {"max_tokens": 160}},
                                "long_solver": {"sampling": {"max_tokens": 192}},
                                "short_solver": {"sampling": {"max_tokens": 96}}},
                      "execution": {"batch_size": 2}}, tmp_path)
    assert stats["funnel"]["seeds"] == 2  # capped at the file's two lines
    assert stats["verification"]["checked"] == 2
    kinds = dict(con.execute("SELECT kind, count(*) FROM solutions GROUP BY 1").fetchall())
    assert kinds == {"program": 4, "long": 2, "short": 2}
    statuses = {s for (s,) in con.execute("SELECT status FROM solutions WHERE kind = 'program'").fetchall()}
    assert statuses <= {"ok", "error", "timeout", "limit", "denied", "unparseable"}
    truth = {t for (t,) in con.execute("SELECT reference_answer FROM verifications").fetchall()}
    assert truth == {"72", "10"}  # GSM8K's first two gold answers
    for verified, decision in con.execute(
            "SELECT v.verified, d.decision FROM verifications v JOIN verdicts d USING (sample_id)").fetchall():
        assert verified or decision == "reject"
