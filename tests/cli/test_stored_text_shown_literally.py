"""Stored text is printed as stored (issue 23 B): rich markup in a value is shown, not
applied (`[/x]` was a MarkupError traceback, `[bold]x[/]` printed "x"), and an ANSI escape
sequence is shown as an escape (\\x1b), never sent to the terminal. Through sql, explain,
stats and runs, on the console the CLI really uses."""
import pytest

import fakes
from support import fake_job, query
from factory.cli import main
from factory.pipeline import run_job
from factory.spec import parse_job

ESC = "\x1b"
HOSTILE = ["[/x]", "[bold]b[/]", "[link=https://e.example]l[/link]", f"{ESC}[31mred", ":smile:"]
SHOWN = ["[/x]", "[bold]b[/]", "[link=https://e.example]l[/link]", "\\x1b[31mred", ":smile:"]


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # rich would wrap a long cell, splitting the strings looked for


def assert_literal(out: str, shown=SHOWN):
    for text in shown:
        assert text in out, (text, out)
    assert ESC not in out  # the terminal never sees the escape sequence
    assert "\N{SMILING FACE WITH SMILING EYES}" not in out and "\U0001f604" not in out


def test_sql_prints_markup_and_escapes_literally(tmp_path, capsys):
    db = tmp_path / "f.duckdb"
    run_job(parse_job(fake_job(num_samples=4)), db=db)
    capsys.readouterr()
    columns = ", ".join(f"'{t.replace(ESC, '')}' AS c{i}" if ESC not in t else f"chr(27) || '{t[1:]}' AS c{i}"
                        for i, t in enumerate(HOSTILE))
    assert main(["sql", f"SELECT {columns}", "--db", str(db)]) == 0
    assert_literal(capsys.readouterr().out)
    # a column name is stored text too, and duckdb_settings() crashed the same way
    assert main(["sql", "SELECT 1 AS \"[/x]\"", "--db", str(db)]) == 0
    assert "[/x]" in capsys.readouterr().out
    # an error line quoting a stored value (a failed cast) shows its escape too
    assert main(["sql", "SELECT (chr(27) || '[2J')::INTEGER", "--db", str(db)]) == 1
    err = capsys.readouterr().err
    assert "\\x1b[2J" in err and ESC not in err and len(err.strip().splitlines()) == 1, err


def test_explain_prints_the_sample_text_literally(tmp_path, capsys):
    db = tmp_path / "f.duckdb"
    story = "Once " + " ".join(HOSTILE) + " upon a time" + " the dog ran home" * 10 + "."  # >= 30 words: kept
    fakes.script(story)  # the first generator completion
    run_job(parse_job(fake_job(num_samples=4)), db=db)
    [(sample_id,)] = query(db, f"SELECT sample_id FROM samples WHERE text = '{story}'")
    capsys.readouterr()
    assert main(["explain", sample_id, "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert_literal(out)
    assert f"sample {sample_id}" in out  # the CLI's own emphasis is still there, as a style


def test_stats_prints_a_model_name_literally(tmp_path, capsys):
    db = tmp_path / "f.duckdb"
    job = fake_job(num_samples=4)
    job["roles"]["generator"]["model"] = "fake[/x]" + ESC + "[31m"  # stored as the generator's model
    run_job(parse_job(job), db=db)
    capsys.readouterr()
    assert main(["stats", "--db", str(db)]) == 0
    assert_literal(capsys.readouterr().out, shown=["fake[/x]\\x1b[31m"])


def test_runs_prints_mixture_names_literally(tmp_path, capsys, monkeypatch):
    import factory.api

    run = {"run_id": "r1", "distill": "d", "task": "math", "mixture": "[bold]b[/]" + ESC + "[2J", "metric": "accuracy",
           "value": 0.5, "ci_low": 0.4, "ci_high": 0.6, "rows": 10, "student": {"kind": "gpt2", "parameters": 1e6},
           "training": {"steps": 3, "first_loss": 2.0, "final_loss": 1.0}, "metrics": {"n": 50},
           "items": {}, "heldout_items": {}, "teacher_items": {}, "scripted_teacher": []}
    monkeypatch.setattr(factory.api, "runs", lambda db, distill=None: [run])  # the rows as list_runs decodes them
    assert main(["runs", "--db", str(tmp_path / "f.duckdb")]) == 0
    assert_literal(capsys.readouterr().out, shown=["[bold]b[/]\\x1b[2J"])
