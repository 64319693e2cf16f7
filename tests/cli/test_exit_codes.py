"""An error's exit code is written on its class (issue 26 item 3): every exception class of
factory/, stores/ and roles/ that the CLI shows as one line declares `exit_code` in its own
body, so a reader of the class sees the code without walking its bases, and main() returns
that code."""
from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest

import factory.api
from factory import cli

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("factory", "stores", "roles")
# Bad input besides the job, plugin and template errors (and their subclasses): the codes the
# CLI's per-verb handlers gave before the classes carried them.
BAD_INPUT = {"RefusedStatement", "LabelError", "InvalidLimit", "UsageError"}
LOAD_ERRORS = {"JobError", "PluginError", "TemplateError"}


def _classes() -> list[tuple[str, str, list[str], ast.ClassDef]]:
    """(file, name, base names, node) of every class in the packages (module level or not)."""
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ClassDef):
                    bases = [b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "") for b in node.bases]
                    found.append((str(path.relative_to(REPO)), node.name, bases, node))
    return found


CLASSES = _classes()
BASES: dict[str, set[str]] = {}  # by name: two classes of one name (each recipe's Options) share an entry
for _, _name, _bases, _ in CLASSES:
    BASES.setdefault(_name, set()).update(_bases)


def _ancestors(name: str) -> set[str]:
    """The class's bases by name, transitively, across the packages."""
    seen, todo = set(), list(BASES[name])
    while todo:
        base = todo.pop()
        if base not in seen:
            seen.add(base)
            todo.extend(BASES.get(base, ()))
    return seen


def _shown(name: str) -> bool:
    """main() prints it as one line (cli.exit_code is not None): a subclass of one of Python's
    errors the CLI handles. Private classes (_NotJson) are caught in their own module."""
    python = {getattr(builtins, b, None) for b in _ancestors(name)} - {None}
    return not name.startswith("_") and any(isinstance(c, type) and issubclass(c, cli.PYTHON_ERRORS) for c in python)


SHOWN = {f"{path}:{name}": (name, node) for path, name, _, node in CLASSES if _shown(name)}


def _declared(node: ast.ClassDef) -> int | None:
    for stmt in node.body:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == "exit_code" for t in targets):
            return ast.literal_eval(stmt.value)
    return None


def test_the_scan_finds_the_known_error_classes():
    # the scan is what the next test trusts: it must see classes of each package, and skip a warning
    names = {name for name, _ in SHOWN.values()}
    assert {"JobError", "StoreError", "TemplateError", "BudgetExceeded", "UsageError"} <= names
    assert "UncuratedWarning" in BASES and "UncuratedWarning" not in names


@pytest.mark.parametrize("where", sorted(SHOWN))
def test_every_error_the_cli_shows_declares_its_exit_code(where):
    name, node = SHOWN[where]
    code = _declared(node)
    assert code is not None, f"{where} shows as one line in the CLI: declare its exit_code in the class"
    ancestors = _ancestors(name) | {name}
    expected = 3 if name == "BudgetExceeded" else 2 if ancestors & LOAD_ERRORS or name in BAD_INPUT else 1
    assert code == expected, f"{where}: exit_code is {code}; the CLI has always exited {expected} for it"


def test_main_returns_the_code_the_class_declares(monkeypatch, capsys):
    class Odd(RuntimeError):
        exit_code = 7

    def fail():
        raise Odd("the line")

    monkeypatch.setattr(factory.api, "recipes", fail)
    assert cli.main(["recipes"]) == 7
    assert capsys.readouterr().err == "error: the line\n"


def test_an_error_of_no_known_kind_keeps_its_traceback(monkeypatch):
    def fail():
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(factory.api, "recipes", fail)
    with pytest.raises(ZeroDivisionError):
        cli.main(["recipes"])
