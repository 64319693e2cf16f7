"""A benchmark file that is binary or corrupt: `factory curate` says in one line which file
and what is wrong, exits 1, and the database is exactly as before (the benchmarks are read
before any curation work or write)."""
import json

import duckdb
import pytest
import yaml

from support import dump, fake_job
from factory.cli import main
from factory.pipeline import run_job
from factory.spec import parse_job


def _parquet_bytes(tmp_path) -> bytes:
    path = tmp_path / "real.parquet"
    duckdb.sql(f"COPY (SELECT 'q' || range AS question FROM range(200)) TO '{path}' (FORMAT parquet)")
    return path.read_bytes()


# name -> (file name, bytes maker, what the line must say)
CASES = {
    "random_bytes_as_parquet": ("bench.parquet", lambda t: bytes(range(256)) * 8, "not a readable Parquet file"),
    "text_as_parquet": ("bench.parquet", lambda t: b'{"question": "a"}\n', "not a readable Parquet file"),
    "truncated_parquet": ("bench.parquet", lambda t: (lambda d: d[: len(d) // 2] + d[-8:])(_parquet_bytes(t)),
                          "not a readable Parquet file"),
    "parquet_named_jsonl": ("bench.jsonl", _parquet_bytes, "binary data (a NUL byte at offset"),
    "latin1_jsonl": ("bench.jsonl", lambda t: b'{"question": "ok"}\n{"question": "caf\xe9"}\n',
                     "bench.jsonl:2: not UTF-8 text (byte 0xe9"),
    "array_lines": ("bench.jsonl", lambda t: b'{"question": "ok"}\n[1, 2]\n', "bench.jsonl:2: expected a JSON object, got list"),
}


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad-bench")
    db = tmp / "ran.duckdb"
    run_job(parse_job(fake_job(db=str(db))), db=db)
    return db


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_benchmark_is_one_line_and_changes_nothing(case, ran, tmp_path, capsys):
    name, make, says = CASES[case]
    db = tmp_path / "f.duckdb"
    db.write_bytes(ran.read_bytes())
    bench = tmp_path / name
    bench.write_bytes(make(tmp_path))
    job = fake_job(db=str(db), curation={"semantic": False, "decontaminate": [{"path": str(bench)}]})
    job_file = tmp_path / "job.yaml"
    job_file.write_text(yaml.safe_dump(job))
    before = dump(db)
    capsys.readouterr()

    assert main(["curate", str(job_file), "--db", str(db)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: benchmark {bench}") and says in err[0], err
    assert "Traceback" not in err[0]
    assert dump(db) == before


def test_a_good_benchmark_in_the_same_setup_curates(ran, tmp_path, capsys):
    """The control: the same job with a readable file exits 0 and writes a pass, so the
    failures above come from the files."""
    db = tmp_path / "f.duckdb"
    db.write_bytes(ran.read_bytes())
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"question": "a question no story holds"}) + "\n")
    job = fake_job(db=str(db), curation={"semantic": False, "decontaminate": [{"path": str(bench)}]})
    job_file = tmp_path / "job.yaml"
    job_file.write_text(yaml.safe_dump(job))
    assert main(["curate", str(job_file), "--db", str(db)]) == 0
    assert dump(db)["curation_runs"]
