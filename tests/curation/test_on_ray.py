"""Curation on Ray (issue 14 item 3): with a cluster address the per-text work (MinHash,
candidate Jaccards, MiniLM embeddings, benchmark n-grams) runs through Ray Data on the
workers of a two-node local cluster (ray.cluster_utils.Cluster, 1 CPU a node, as
tests/integration/test_ray_cluster.py builds), and the pass is identical to the
single-process one: clusters, similarities, flags, scores, stored vectors."""
import os
import shutil

import numpy as np
import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from factory.cli import main  # noqa: E402
from factory.curation import decontaminate, near_dedup, on_ray, semantic_dedup  # noqa: E402
from factory.curation.run import curate  # noqa: E402
from stores import Store  # noqa: E402
from test_curation import JOB, bench_file, build, config  # noqa: E402,F401
from test_near_dedup_recall import make_corpus  # noqa: E402

# Every test embeds with all-MiniLM-L6-v2 (sentence-transformers), on Ray workers and here.
pytestmark = pytest.mark.model

TABLES = {
    "dedup_clusters": "SELECT method, cluster_id, sample_id, kept, similarity FROM dedup_clusters",
    "contamination": "SELECT * EXCLUDE (job) FROM contamination",
    "quality_scores": "SELECT sample_id, score, components FROM quality_scores",
    "embeddings": "SELECT sample_id, model, embedding FROM embeddings",
    "benchmark_embeddings": "SELECT * FROM benchmark_embeddings",
    "accepted": "SELECT sample_id FROM accepted",
}


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()


def state(db) -> dict:
    with Store(db) as store:
        return {name: store.con.execute(sql + " ORDER BY ALL").fetchall() for name, sql in TABLES.items()}


def test_two_workers_give_the_single_process_pairs_hits_and_vectors(cluster):
    compute = on_ray.compute_for(cluster.address)
    assert isinstance(compute, on_ray.OnRay) and compute.workers == 2  # both nodes' CPUs
    assert len({n["NodeID"] for n in ray.nodes() if n["Alive"]}) == 2
    # 500 docs, 100 planted near-copies: 2 blocks, so positions must put rows back in order.
    ids, texts, _ = make_corpus(n_docs=400, n_planted=100, seed=3)
    want = near_dedup.near_duplicate_pairs(ids, texts, 0.8)
    assert len(want) > 20
    assert compute.near_duplicate_pairs(ids, texts, 0.8) == want  # same pairs, order and Jaccards
    rows = [texts[7][:400], "no overlap with anything", texts[300], ""]
    want_hits = decontaminate.contamination_hits(ids, texts, "b", rows, [8, 13])
    assert len(want_hits) >= 4 and compute.contamination_hits(ids, texts, "b", rows, [8, 13]) == want_hits
    assert compute.contamination_hits(ids, texts, "b", ["zzz qqq www"], [8]) == []
    # 140 texts of 3-60 words: 3 of encode's batches over 2 blocks; vectors equal bit for bit.
    short = [" ".join(t.split()[:3 + (i * 7) % 58]) for i, t in enumerate(texts[:140])]
    assert np.array_equal(compute.embed(short), semantic_dedup.embed(short))


def test_curated_with_and_without_the_address_is_identical(cluster, tmp_path, bench_file):  # noqa: F811
    base = tmp_path / "base.duckdb"
    build(base)
    here, there = tmp_path / "here.duckdb", tmp_path / "there.duckdb"
    shutil.copy(base, here)
    shutil.copy(base, there)
    settings = config(bench_file, semantic_threshold=0.85)  # near, semantic, n-gram and semantic contamination
    with Store(here) as store:
        local = curate(store.con, JOB, "tinystories", settings)
    with Store(there) as store:
        remote = curate(store.con, JOB, "tinystories", settings, address=cluster.address)
    assert remote == local and local["near_clusters"] == 1 and local["contaminated"] == 1
    assert state(there) == state(here)


def test_factory_curate_address_on_the_cli(cluster, tmp_path, capsys):
    base = tmp_path / "base.duckdb"
    build(base)
    there = tmp_path / "there.duckdb"
    shutil.copy(base, there)
    assert main(["curate", JOB, "--db", str(base)]) == 0
    assert main(["curate", JOB, "--db", str(there), "--address", cluster.address]) == 0
    assert state(there) == state(base)
    err = capsys.readouterr().err
    assert err.count(f"curated job {JOB}") == 2 and "Traceback" not in err
