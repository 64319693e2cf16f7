"""One store interface (issue 26 item 2): code under factory/ and roles/ reaches the database
through the Store's public methods and the functions of stores/ (which take a Store,
stores/handle.py), never through a Store's connection (`.con`) or a private name of stores.
Read with `ast`, so comments and strings do not count."""
import ast
from pathlib import Path

from support import REPO

PACKAGES = ("factory", "roles")
# Files let through: none. pipeline.py and streaming.py were, until their batch store moved to
# stores/batch_store.py. A file added here needs a reason written beside it.
ALLOWED: set[str] = set()


def violations(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "con":
            found.append(f"line {node.lineno}: .con ({ast.unparse(node)})")
        elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "stores":
            found += [f"line {node.lineno}: from {node.module} import {a.name}" for a in node.names
                      if a.name.startswith("_")]
        elif isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names
                      if a.name.split(".")[0] == "stores" and any(p.startswith("_") for p in a.name.split("."))]
    return found


def files() -> list[Path]:
    return [path for package in PACKAGES for path in sorted((REPO / package).rglob("*.py"))]


def test_no_store_connection_or_private_stores_name_outside_stores():
    found = [f"{path.relative_to(REPO)}: {v}" for path in files()
             if str(path.relative_to(REPO)) not in ALLOWED
             for v in violations(ast.parse(path.read_text(), str(path)))]
    assert not found, "outside stores/, use the Store's methods or the stores functions:\n" + "\n".join(found)


def test_the_check_sees_each_kind_of_violation():
    source = ("from stores.stats import _scalar\nimport stores._private\n"
              "def f(store):\n    return store.con.execute('SELECT 1')\n")
    assert [v.split(":")[0] for v in violations(ast.parse(source))] == ["line 1", "line 2", "line 4"]
    assert violations(ast.parse("from stores.stats import resolve_job\ndef f(store):\n    return store.path\n")) == []


def test_the_allowlist_names_files_that_exist():
    assert all((REPO / path).is_file() for path in ALLOWED)
