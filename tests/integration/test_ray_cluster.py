"""A two-node Ray cluster on this machine (ray.cluster_utils.Cluster, 1 CPU a node):
engine actors land on both nodes and a job runs through `--address`."""
import os
import subprocess
import sys

import duckdb
import pytest
import yaml

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from factory.backends import Request  # noqa: E402
from factory.executors.ray_pool import RayExecutor  # noqa: E402
from factory.spec import ModelRef  # noqa: E402

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    yield c
    ray.shutdown()
    c.shutdown()


def test_engine_actors_are_placed_on_both_nodes(cluster):
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        executor = RayExecutor(engines="auto", threads=1)
        assert executor.engines == 2
        nodes = executor.node_ids()
        assert len(set(nodes)) == 2, nodes
        requests = [Request(key=f"k{i}", messages=({"role": "user", "content": f"Count to {i + 3}."},),
                            sampling={"temperature": 0.0, "top_p": 1.0, "top_k": 0, "max_tokens": 8,
                                      "repeat_penalty": 1.0}, seed=i) for i in range(4)]
        out = executor.generate(ModelRef(), requests)
        assert [c.key for c in out] == ["k0", "k1", "k2", "k3"] and all(c.completion_tokens > 0 for c in out)
        executor.close()
    finally:
        ray.shutdown()


def test_factory_run_joins_the_cluster_with_address(cluster, tmp_path):
    job = {"name": "cluster", "recipe": "tinystories", "num_samples": 2, "reviewers": 1,
           "roles": {"generator": {"sampling": {"max_tokens": 48}}, "reviewer": {"sampling": {"max_tokens": 60}},
                     "adjudicator": {"sampling": {"max_tokens": 40}}},
           "execution": {"batch_size": 2}}
    path, db = tmp_path / "job.yaml", tmp_path / "c.duckdb"
    path.write_text(yaml.safe_dump(job))
    done = subprocess.run([sys.executable, "-m", "factory.cli", "run", str(path), "--db", str(db), "--quiet",
                           "--address", cluster.address], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert done.returncode == 0, done.stderr
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM done_seeds").fetchone()[0] == 2
