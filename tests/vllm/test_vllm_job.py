"""A whole `factory run` with every role on the vllm backend, through a Ray engine actor
(the batching path: each role's requests reach the engine in one call)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import yaml

REPO = Path(__file__).resolve().parents[2]
CKPT = Path(os.environ.get("FACTORY_VLLM_MODEL", REPO / ".cache" / "smollm2-135m-hf"))


def test_factory_run_with_the_vllm_backend(tmp_path):
    role = {"backend": "vllm", "model": str(CKPT)}
    job = {"name": "vllm-small", "recipe": "tinystories", "num_samples": 3, "reviewers": 2,
           "roles": {"generator": {**role, "sampling": {"max_tokens": 96}},
                     "reviewer": {**role, "sampling": {"max_tokens": 80}},
                     "adjudicator": {**role, "sampling": {"max_tokens": 60}}},
           "decision": {"accept_mean": 4.0, "max_spread": 1.0, "reject_mean": 2.5},
           "execution": {"executor": "ray", "engines": 1, "threads_per_engine": 2, "batch_size": 3}}
    path, db = tmp_path / "job.yaml", tmp_path / "v.duckdb"
    path.write_text(yaml.safe_dump(job))
    done = subprocess.run([sys.executable, "-m", "factory.cli", "run", str(path), "--db", str(db), "--quiet"],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert done.returncode == 0, done.stderr
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM done_seeds").fetchone()[0] == 3
    models = {json.loads(m)["backend"] for (m,) in con.execute("SELECT DISTINCT model FROM samples").fetchall()}
    assert models == {"vllm"}
    reviews, drops = con.execute(
        "SELECT (SELECT count(*) FROM reviews), (SELECT count(*) FROM drops WHERE role = 'reviewer')").fetchone()
    assert reviews + drops == 2 * con.execute("SELECT count(*) FROM samples").fetchone()[0] and reviews > 0
