"""`factory curate` by job file, by name and by fingerprint: the same settings, so the same
contamination flags, clusters and accepted view. A pass removes flags only with a changed
benchmark list (or a benchmark that now reads differently) and says so. Databases from
before m006 fall back to the last pass's settings, then to the defaults.

One fake-backend job (24 seeds) is run once; each test curates its own copy of the file."""
import json
import re
import shutil

import duckdb
import pytest
import yaml

from support import fake_job, query
from factory.api import curate
from factory.cli import main
from factory.pipeline import run_job
from factory.spec import parse_job
from stores import Store
from stores.migrations import MIGRATIONS

BENCH = "fake-bench"
PICKED = 3  # accepted samples the benchmark contaminates


def job_dict(db, bench=None, **curation) -> dict:
    # semantic dedup and semantic decontamination off: the job's settings must matter (the
    # defaults would switch them on); the likelihood weight off: an old database has no signals
    settings = {"semantic": False, "semantic_contamination": False, "weights": {"likelihood": 0.0}, **curation}
    if bench is not None:
        settings["decontaminate"] = [{"path": str(bench), "name": BENCH}]
    return fake_job(num_samples=24, recipe="tinystories", db=str(db), curation=settings)


def write_yaml(path, db, bench=None, **curation):
    path.write_text(yaml.safe_dump(job_dict(db, bench, **curation)))
    return path


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """The run's database, and a benchmark file whose rows are the last 8 words of three
    accepted samples ("went home. The end of story number N."): each row is one 8-gram that
    exactly one sample holds; no 13-gram can match."""
    tmp = tmp_path_factory.mktemp("ran")
    db = tmp / "ran.duckdb"
    spec = parse_job(job_dict(db))
    run_job(spec, db=db)
    texts = query(db, """SELECT s.text FROM samples s JOIN verdicts v USING (sample_id)
                         WHERE v.decision = 'accept' AND s.duplicate_of IS NULL ORDER BY s.seed_index""")
    endings = [m.group(0) for (t,) in texts if (m := re.search(r"went home\. The end of story number [1-9]\d*\.$", t))]
    assert len(endings) > PICKED  # some accepted samples stay clean
    bench = tmp / "bench.jsonl"
    bench.write_text("".join(json.dumps({"question": e}) + "\n" for e in endings[:PICKED]))
    return {"db": db, "bench": bench, "fingerprint": spec.fingerprint}


@pytest.fixture
def db(ran, tmp_path):
    path = tmp_path / "f.duckdb"
    shutil.copy(ran["db"], path)
    return path


def snapshot(db) -> dict:
    return {
        "contamination": query(db, "SELECT sample_id, benchmark, benchmark_row, ngram_size, ngram FROM contamination "
                                   "ORDER BY ALL"),
        "clusters": query(db, "SELECT method, cluster_id, sample_id, kept, similarity FROM dedup_clusters ORDER BY ALL"),
        "accepted": query(db, "SELECT sample_id FROM accepted ORDER BY ALL"),
        "scores": query(db, "SELECT sample_id, score FROM quality_scores ORDER BY ALL"),
    }


def curate_cli(capsys, *argv) -> list[str]:
    assert main(["curate", *map(str, argv)]) == 0
    return capsys.readouterr().err.splitlines()


def test_file_name_and_fingerprint_give_the_same_flags_clusters_and_accepted_view(ran, db, tmp_path, capsys):
    job_file = write_yaml(tmp_path / "job.yaml", db, ran["bench"])
    lines = curate_cli(capsys, job_file)
    assert lines[0] == "curation settings: the job file's (now stored with the job)"
    first = snapshot(db)
    contaminated = {r[0] for r in first["contamination"]}
    assert len(contaminated) == PICKED and {r[3] for r in first["contamination"]} == {8}
    assert first["accepted"] and not contaminated & {r[0] for r in first["accepted"]}
    # semantic: false took effect (the defaults switch it on): the pass ran with it and made no
    # semantic cluster (the fake's 24 stories make no near cluster either; no embeddings, below)
    assert json.loads(query(db, "SELECT config FROM curation_runs")[0][0])["semantic"] is False
    assert [r for r in first["clusters"] if r[0] == "semantic"] == []

    assert curate_cli(capsys, "fake-job", "--db", db)[0] == "curation settings: stored with the job (from its latest YAML)"
    assert snapshot(db) == first
    result = curate(ran["fingerprint"], db=db)  # the Python API: the same code path
    assert result["settings"] == "stored with the job" and result["job"] == ran["fingerprint"]
    assert result["contaminated"] == PICKED and result["semantic_clusters"] == 0
    assert "contamination_change" not in result  # same list, same flags
    assert snapshot(db) == first
    assert query(db, "SELECT count(*) FROM embeddings") == [(0,)]


def test_a_changed_benchmark_list_removes_flags_and_says_so(ran, db, tmp_path, capsys):
    curate(write_yaml(tmp_path / "with.yaml", db, ran["bench"]))
    without = write_yaml(tmp_path / "without.yaml", db)  # curation is not fingerprinted: the same job
    lines = curate_cli(capsys, without)
    assert lines[-1] == f"contamination: benchmark list changed (was {BENCH}; now none): {PICKED} flags removed"
    assert query(db, "SELECT count(*) FROM contamination") == [(0,)]
    stored = json.loads(query(db, "SELECT summary FROM curation_runs")[0][0])
    assert stored["contamination_change"] == lines[-1].removeprefix("contamination: ")
    # by name: the settings now stored (no benchmark); nothing left to remove, nothing said
    again = curate("fake-job", db=db)
    assert again["contaminated"] == 0 and "contamination_change" not in again

    curate(write_yaml(tmp_path / "with.yaml", db, ran["bench"]))
    # same name, other n-gram sizes: the detailed description shows what changed
    result = curate(write_yaml(tmp_path / "13.yaml", db, ran["bench"], contamination_ngrams=[13]))
    assert result["contamination_change"] == (
        f"benchmark list changed (was {BENCH} ({ran['bench']}, field default); 8,13-grams; "
        f"now {BENCH} ({ran['bench']}, field default); 13-grams): {PICKED} flags removed")


def test_a_benchmark_that_reads_differently_under_the_same_list_is_reported(ran, db, tmp_path):
    bench = tmp_path / "bench.jsonl"
    shutil.copy(ran["bench"], bench)
    curate(write_yaml(tmp_path / "job.yaml", db, bench))
    bench.write_text(json.dumps({"question": "Nothing here matches any story at all."}) + "\n")
    result = curate("fake-job", db=db)
    assert result["contamination_change"].startswith(f"benchmark list unchanged, but {PICKED} flags removed: ")


def test_register_job_keeps_the_settings_for_curation_by_name(ran, db, tmp_path):
    settings = parse_job(job_dict(db, ran["bench"])).curation.model_dump(mode="json")
    with Store(db) as store:
        row = store.con.execute("SELECT name, recipe, spec, decision_rule, num_samples FROM jobs").fetchone()
        args = (ran["fingerprint"], row[0], row[1], json.loads(row[2]), json.loads(row[3]), row[4])
        store.register_job(*args, curation=settings)
        store.register_job(*args)  # no settings given (an older caller): the stored ones stay
    result = curate("fake-job", db=db)
    assert result["settings"] == "stored with the job" and result["contaminated"] == PICKED
    with Store(db) as store:
        store.register_job(*args, curation={**settings, "decontaminate": []})  # a later YAML replaces them
    assert json.loads(query(db, "SELECT curation FROM jobs")[0][0])["decontaminate"] == []


def test_a_job_file_of_a_job_not_in_the_database_is_one_line(ran, db, tmp_path, capsys):
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**job_dict(db), "seed": 99}))
    assert main(["curate", str(other)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not in" in err and "run it first" in err
    assert main(["curate", "nope.yaml", "--db", str(db)]) == 1
    assert capsys.readouterr().err.startswith("error: nope.yaml: no such job file, and no job 'nope.yaml'")


def old_database(path, source, tables) -> None:
    """A database as the code before m006 made it: the migrations up to m005, called
    directly, then `tables` copied from `source` (the columns an old file had)."""
    assert [m.__name__ for m in MIGRATIONS[:5]][-1] == "m005_role_and_versions"
    con = duckdb.connect(str(path))
    con.execute("""CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,
                   applied_at TIMESTAMP DEFAULT current_timestamp)""")
    for version, migration in enumerate(MIGRATIONS[:5], start=1):
        migration(con)
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, migration.__name__])
    con.execute(f"ATTACH '{source}' AS src (READ_ONLY)")
    for table in tables:
        columns = ", ".join(c for (c,) in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() AND table_name = ?",
            [table]).fetchall())
        con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM src.{table}")
    con.close()


def test_an_old_database_falls_back_to_the_last_pass_then_the_defaults(ran, db, tmp_path, capsys):
    curate(write_yaml(tmp_path / "job.yaml", db, ran["bench"]))
    before = snapshot(db)
    run_tables = ["jobs", "seeds", "samples", "reviews", "verdicts", "drops", "done_seeds"]
    old = tmp_path / "old.duckdb"
    old_database(old, db, run_tables + ["dedup_clusters", "contamination", "quality_scores", "curation_runs"])
    lines = curate_cli(capsys, "fake-job", "--db", old)
    assert lines[0] == "curation settings: the job's last curation pass's (none stored with the job)"
    assert len(lines) == 2  # no contamination line: same list, same flags
    assert snapshot(old) == before
    assert query(old, "SELECT count(*) FROM embeddings") == [(0,)]  # the pass kept semantic off
    assert query(old, "SELECT max(version) FROM schema_migrations") == [(len(MIGRATIONS),)]
    assert query(old, "SELECT curation FROM jobs") == [(None,)]  # by name stores nothing

    never_curated = tmp_path / "never.duckdb"
    old_database(never_curated, db, ["jobs"])  # no samples: the default pass embeds nothing
    result = curate("fake-job", db=never_curated)
    assert result["settings"] == "defaults" and result["samples"] == 0
