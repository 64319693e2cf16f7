"""One path from the CLI (issue 26 item 3): a verb calls factory.api and renders what it
returns; cli.py opens no database and imports nothing of stores/ or the pipeline."""
from __future__ import annotations

import ast
from pathlib import Path

import support
from support import fake_job
import factory.api
from factory import cli

CLI = Path(cli.__file__)


def _imports(path: Path) -> set[str]:
    """Every module path.py imports, function-level imports included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_run_goes_through_api_run(tmp_path, monkeypatch, capsys):
    job, db = support.write_job(tmp_path, fake_job()), tmp_path / "f.duckdb"
    calls, real = [], factory.api.run

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(factory.api, "run", spy)
    assert cli.main(["run", str(job), "--db", str(db), "--quiet"]) == 0
    assert len(calls) == 1
    (spec,), kwargs = calls[0]
    assert spec.name == "fake-job" and kwargs["db"] == str(db) and kwargs["limit"] is None
    assert "seeds processed" in capsys.readouterr().err


def test_cli_reaches_data_only_through_the_api():
    imported = _imports(CLI)
    assert not {m for m in imported if m == "stores" or m.startswith(("stores.", "factory.pipeline"))}, imported
    tree = ast.parse(CLI.read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    names |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    # api._reading is the one read-only connection of the verbs; no verb builds another's arguments
    assert not names & {"open_database", "open_for_reading", "_reading", "execute", "Namespace"}

