"""factory distill --address: Ray Train's workers go to the cluster at that address. A real
two-process cluster (ray.cluster_utils.Cluster, a head of 1 CPU) is joined: 2 workers are
refused with that cluster's resources (a local Ray here would have 2 CPUs and accept them),
one line, exit 2, nothing written; --address with training.workers 1 is refused too (it
would train here, not there)."""
import pytest
import ray
from ray.cluster_utils import Cluster

from support import query
from factory.cli import main

from .test_distill_cli import write_spec


@pytest.fixture
def one_cpu_cluster():
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    yield cluster.address
    ray.shutdown()
    cluster.shutdown()


def test_distill_joins_the_cluster_at_address(one_cpu_cluster, tmp_path, math_db, student_cache, monkeypatch, capsys):
    monkeypatch.setenv("FACTORY_CACHE", str(student_cache))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    before = query(math_db, "SELECT (SELECT count(*) FROM mixtures), (SELECT count(*) FROM runs)")
    spec = write_spec(tmp_path, math_db, name="on-cluster", training={"batch_size": 4, "workers": 2})
    assert main(["distill", spec, "--address", one_cpu_cluster, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: training.workers: 2 workers need 2 CPUs, but the Ray cluster has 1 CPUs and 0 GPUs; "
                   "use at most 1"]
    assert ray.is_initialized()  # joined, not started: the only Ray here is the test's cluster
    assert query(math_db, "SELECT (SELECT count(*) FROM mixtures), (SELECT count(*) FROM runs)") == before
    assert not (tmp_path / "runs").exists()


def test_address_with_one_worker_is_refused(tmp_path, math_db, student_cache, monkeypatch, capsys):
    monkeypatch.setenv("FACTORY_CACHE", str(student_cache))
    spec = write_spec(tmp_path, math_db, name="one-worker")
    assert main(["distill", spec, "--address", "127.0.0.1:6379", "--quiet"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --address: only Ray Train workers run on a cluster, and training.workers is 1; set "
        "training.workers to 2 or more, or leave --address out"]
    assert not (tmp_path / "runs").exists()
