"""Issue 24 item 1: no stored row or card of a file-recipe run holds an absolute path of
the machine that ran it. jobs.recipe is stored relative to the job file and found again
from the working folder or the database's; databases that stored the absolute path stay
readable and their jobs keep their fingerprints."""
from __future__ import annotations

import duckdb
from test_step_api import facts_job, write_doc_files

from factory.api import curate, export
from factory.pipeline import run_job
from factory.spec import load_job


def _text_columns(con) -> list[tuple[str, str]]:
    return con.execute("""SELECT table_name, column_name FROM information_schema.columns
                          WHERE data_type IN ('VARCHAR', 'JSON') AND table_name IN
                                (SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE')
                          ORDER BY ALL""").fetchall()


def rows_holding(db, needle: str) -> list[tuple[str, str, int]]:
    """(table, column, rows) of every text column of the database whose value contains needle."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        found = []
        for table, column in _text_columns(con):
            n = con.execute(f'SELECT count(*) FROM "{table}" WHERE contains("{column}"::VARCHAR, ?)',
                            [needle]).fetchone()[0]
            if n:
                found.append((table, column, n))
        return found
    finally:
        con.close()


def _ran(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    write_doc_files(project)
    spec = load_job(facts_job(project, curation={"semantic": False}))  # no embedding model needed here
    db = project / "facts.duckdb"
    result = run_job(spec, db=db)
    return project, spec, db, result


def test_no_stored_row_or_card_holds_the_machines_path(tmp_path, monkeypatch):
    import sys

    monkeypatch.setattr(sys, "path", list(sys.path))
    project, spec, db, result = _ran(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # curate and export by name find the recipe from the database's folder
    curate("facts", db=db)
    export(db, "facts", out=elsewhere / "out", format="jsonl")
    assert rows_holding(db, "lib/facts.py") == [("jobs", "recipe", 1), ("jobs", "spec", 1)]  # it ran a file recipe
    for needle in {str(tmp_path), str(tmp_path.resolve())}:
        assert rows_holding(db, needle) == []
        assert all(needle not in f.read_text() for f in (elsewhere / "out").rglob("*") if f.is_file())
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT recipe FROM jobs").fetchall() == [("lib/facts.py:Facts",)]
    con.close()


def test_an_absolute_recipe_path_in_the_yaml_is_stored_relative(tmp_path, monkeypatch):
    import sys

    monkeypatch.setattr(sys, "path", list(sys.path))
    project = tmp_path / "project"
    project.mkdir()
    write_doc_files(project)
    spec = load_job(facts_job(project / "lib" / "..", recipe=f"{project / 'lib' / 'facts.py'}:Facts"))
    assert spec.recipe_reference() == "lib/facts.py:Facts"
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    moved = load_job(facts_job(jobs, recipe=f"{project / 'lib' / 'facts.py'}:Facts"))
    assert moved.recipe_reference() == "../project/lib/facts.py:Facts"


def test_a_database_that_stored_the_absolute_path_reads_and_continues(tmp_path, monkeypatch):
    import sys

    monkeypatch.setattr(sys, "path", list(sys.path))
    project, spec, db, result = _ran(tmp_path)
    con = duckdb.connect(str(db))
    con.execute("UPDATE jobs SET recipe = ?", [f"{(project / 'lib' / 'facts.py').resolve()}:Facts"])  # as before
    con.close()
    monkeypatch.chdir(tmp_path)
    curate("facts", db=db)
    export(db, "facts", out=tmp_path / "out", format="jsonl")
    again = run_job(load_job(project / "job.yaml"), db=db)
    assert again.job == result.job == spec.fingerprint and again.seeds_done_before == spec.num_samples
