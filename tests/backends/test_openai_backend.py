"""The openai backend against a real OpenAI-compatible server: llama.cpp's server
(`python -m llama_cpp.server`) serving the packaged GGUF on 127.0.0.1, started and stopped
here; including a server killed mid-job and a rerun that resumes."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import duckdb
import pytest
import yaml
from support import wait_for_committed_batches

from factory.backends.llamacpp import model_path

pytestmark = pytest.mark.model
ROLES = ("generator", "reviewer", "adjudicator")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(model_path("smollm2-135m-instruct-q4_1")),
                             "--host", "127.0.0.1", "--port", str(port), "--n_threads", "2", "--n_ctx", "4096"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1)
            return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("llama_cpp.server did not start in 60 s")


@pytest.fixture
def server():
    port = free_port()
    proc = start_server(port)
    yield port, proc
    proc.kill()
    proc.wait()


def job_file(tmp_path, port, n=3, **endpoint):
    ep = {"base_url": f"http://127.0.0.1:{port}/v1", "schema_format": "json_object", "max_concurrency": 2,
          "timeout_s": 60, "max_retries": 1, **endpoint}
    job = {"name": "remote", "recipe": "tinystories", "num_samples": n, "seed": 2, "reviewers": 2,
           "roles": {r: {"backend": "openai", "model": "smollm2", "endpoint": ep,
                         "sampling": {"max_tokens": 64 if r == "generator" else 80}} for r in ROLES},
           "decision": {"accept_mean": 4.0, "max_spread": 1.0, "reject_mean": 2.5,
                        "require_seed_words": False, "truncated": "keep", "text_gates": "signal"},  # gates: tests/signals
           "execution": {"executor": "local", "batch_size": 1}}
    path = tmp_path / "remote.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def factory(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "factory.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_a_job_through_the_openai_backend(tmp_path, server):
    port, _ = server
    db = tmp_path / "r.duckdb"
    done = factory("run", str(job_file(tmp_path, port)), "--db", str(db), "--quiet")
    assert done.returncode == 0, done.stderr
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM done_seeds").fetchone()[0] == 3
    models = {json.loads(m)["base_url"] for (m,) in con.execute("SELECT DISTINCT model FROM samples").fetchall()}
    assert models == {f"http://127.0.0.1:{port}/v1"}
    # usage tokens come from the server; schema-constrained reviews parse
    assert con.execute("SELECT min(completion_tokens) FROM samples").fetchone()[0] > 0
    reviews, drops = con.execute("SELECT (SELECT count(*) FROM reviews), (SELECT count(*) FROM drops WHERE role = 'reviewer')").fetchone()
    assert reviews > 0 and reviews >= drops


def test_unreachable_server_is_one_line_naming_the_url(tmp_path):
    port = free_port()  # nobody listens here
    done = factory("run", str(job_file(tmp_path, port, max_retries=0, timeout_s=5)), "--db", str(tmp_path / "x.duckdb"),
                   "--quiet")
    assert done.returncode == 1
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: cannot reach http://127.0.0.1:{port}/v1") and "Traceback" not in done.stderr


def test_missing_api_key_variable_is_named(tmp_path):
    path = job_file(tmp_path, 1, api_key_env="FACTORY_TEST_NO_SUCH_KEY")
    done = factory("run", str(path), "--db", str(tmp_path / "x.duckdb"), "--quiet")
    assert done.returncode == 1 and "FACTORY_TEST_NO_SUCH_KEY" in done.stderr
    assert not (tmp_path / "x.duckdb").exists()


def test_server_killed_mid_job_then_rerun_resumes_with_nothing_lost(tmp_path):
    port = free_port()
    server = start_server(port)
    db, path = tmp_path / "k.duckdb", job_file(tmp_path, port, n=6, max_retries=1, timeout_s=60)
    job = subprocess.Popen([sys.executable, "-m", "factory.cli", "run", str(path), "--db", str(db), "--quiet"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_committed_batches(db, job, at_least=1)  # a batch in, the job still running
        server.send_signal(signal.SIGKILL)
        server.wait()
        _, err = job.communicate(timeout=120)
        assert job.returncode == 1, err
        assert f"127.0.0.1:{port}" in err.strip().splitlines()[-1]
        con = duckdb.connect(str(db), read_only=True)
        done_before = con.execute("SELECT count(*) FROM done_seeds").fetchone()[0]
        cached_before = con.execute("SELECT count(*) FROM completions").fetchone()[0]
        con.close()
        assert done_before < 6
        server = start_server(port)
        rerun = factory("run", str(path), "--db", str(db), "--quiet")
        assert rerun.returncode == 0, rerun.stderr
        con = duckdb.connect(str(db), read_only=True)
        assert con.execute("SELECT count(*), count(DISTINCT seed_index) FROM done_seeds").fetchone() == (6, 6)
        assert con.execute("SELECT count(*) FROM seeds").fetchone()[0] == 6
        # completions that arrived before the kill were served from the cache, not asked again
        calls = int(re.search(r"(\d+)\s+model\s+calls", rerun.stderr).group(1))
        total = con.execute("SELECT count(*) FROM completions").fetchone()[0]
        assert calls == total - cached_before
    finally:
        server.kill()
        job.kill()
