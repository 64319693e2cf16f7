"""A curation pass bounds DuckDB's memory_limit (factory/curation/run.py MEMORY_LIMIT) while it
runs and leaves the connection's setting as it found it: after a pass, after a failing pass,
whether the limit was DuckDB's default or one the caller set."""
import json

import duckdb
import pytest

from factory.curation import run
from factory.keys import content_hash
from factory.spec import CurationSpec
from stores import Store
from stores.memory_limit import bounded_memory, current_limit, size_in_bytes

JOB = "j1"
TEXTS = ["Tom the turtle wanted to see the sea and walked a little further every day.",
         "Tom the turtle wanted to see the sea and walked a little further every morning.",
         "Lily found a red ball in the park and kicked it over a tall tree."]
CHECKS = {"out_of_vocabulary_share": 0.1, "has_verb": True, "has_noun": True, "has_adjective": False}
CONFIG = CurationSpec(semantic=False)  # no embeddings: no model in these tests


def _store(db):
    store = Store(db)
    con = store.con
    con.execute("INSERT INTO jobs (fingerprint, name, recipe, spec, decision_rule, num_samples, created_at) "
                "VALUES (?, 'planted', 'tinystories', '{}', '{}', 3, now())", [JOB])
    for i, text in enumerate(TEXTS):
        con.execute("INSERT INTO seeds VALUES (?, ?, ?, '{}')", [f"seed{i}", JOB, i])
        con.execute("""INSERT INTO samples (sample_id, job, seed_id, seed_index, text, content_hash, rule_checks,
                       template, model) VALUES (?, ?, ?, ?, ?, ?, ?, 't@1', '{"model": "m"}')""",
                    [f"s{i}", JOB, f"seed{i}", i, text, content_hash(text), json.dumps(CHECKS)])
    return store


def _seen_during_write(monkeypatch) -> list[str]:
    """The memory_limit the pass's write ran under."""
    seen, write = [], run.write_curation

    def recording(con, *args, **kwargs):
        seen.append(current_limit(con))
        return write(con, *args, **kwargs)

    monkeypatch.setattr(run, "write_curation", recording)
    return seen


def test_default_limit_bounded_during_the_pass_and_back_after(tmp_path, monkeypatch):
    seen = _seen_during_write(monkeypatch)
    with _store(tmp_path / "s.duckdb") as store:
        before = current_limit(store.con)
        assert size_in_bytes(before) > size_in_bytes(run.MEMORY_LIMIT)  # DuckDB's default, 80% of RAM
        summary = run.curate(store.con, JOB, "tinystories", CONFIG)
        assert current_limit(store.con) == before
    assert seen == ["488.2 MiB"]  # run.MEMORY_LIMIT, 512MB = 512 x 10^6 bytes
    assert summary["samples"] == 3 and summary["near_removed"] == 1


@pytest.mark.parametrize("limit, during", [("3GB", "488.2 MiB"), ("500MB", "476.8 MiB")])
def test_a_set_limit_comes_back_and_a_smaller_one_is_kept(tmp_path, monkeypatch, limit, during):
    seen = _seen_during_write(monkeypatch)
    with _store(tmp_path / "s.duckdb") as store:
        store.con.execute(f"SET memory_limit = '{limit}'")
        before = current_limit(store.con)
        run.curate(store.con, JOB, "tinystories", CONFIG)
        assert current_limit(store.con) == before
    assert seen == [during]


@pytest.mark.parametrize("limit", [None, "3GB"])
def test_a_failing_pass_restores_the_limit(tmp_path, monkeypatch, limit):
    def failing(*args, **kwargs):
        raise RuntimeError("write failed")

    monkeypatch.setattr(run, "write_curation", failing)
    with _store(tmp_path / "s.duckdb") as store:
        if limit:
            store.con.execute(f"SET memory_limit = '{limit}'")
        before = current_limit(store.con)
        with pytest.raises(RuntimeError, match="write failed"):
            run.curate(store.con, JOB, "tinystories", CONFIG)
        assert current_limit(store.con) == before


@pytest.mark.parametrize("limit", ["1GB", "1000MB", "2GiB", "18.8 GiB", "953.6 MiB", "500KB", "-1"])
def test_bounded_memory_restores_what_duckdb_showed(limit):
    """DuckDB shows limits truncated to one decimal ('953.6 MiB'): SET of that text reads back
    as '953.5 MiB'; size_in_bytes rounds up so the restored limit reads as before."""
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{limit}'")
    before = current_limit(con)
    with bounded_memory(con, "256MB"):
        assert current_limit(con) == ("244.1 MiB" if limit != "500KB" else before)  # lowered, never raised
    assert current_limit(con) == before


def test_size_in_bytes_refuses_an_unknown_unit():
    with pytest.raises(ValueError, match="memory_limit '3 parsecs'"):
        size_in_bytes("3 parsecs")
