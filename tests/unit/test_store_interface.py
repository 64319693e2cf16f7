"""One store interface (issue 26 item 2): code under factory/ and roles/ reaches the database
through the Store's public methods and the functions of stores/ (which take a Store,
stores/handle.py), never through a Store's connection (`.con`) or a private name of stores,
and holds no SQL of its own. Read with `ast`, so comments do not count."""
import ast
import re
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


# A string that is a statement: an uppercase keyword first, then an uppercase word that every
# such statement has (SELECT ... FROM, INSERT INTO, CREATE TABLE, UPDATE ... SET, ATTACH ... AS,
# COPY ... TO). Case-sensitive, so prose ("Select the rows from ...") and docstrings that name a
# keyword mid-sentence ("reads (SELECT, WITH, ...)") are not SQL; a user's query (`factory sql`)
# arrives as an argument, never as a constant of ours.
SQL = re.compile(r"^\s*(?:SELECT|INSERT|UPDATE|DELETE|CREATE|WITH|COPY|ATTACH)\b.*?"
                 r"\b(?:FROM|INTO|TABLE|VIEW|INDEX|SET|VALUES|AS|TO)\b", re.DOTALL)


def sql_strings(tree: ast.AST) -> list[str]:
    """Each string constant, or f-string (its {} parts as {}), that reads as SQL."""
    parts = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in parts:
            text = node.value
        else:
            continue
        if SQL.match(text):
            found.append(f"line {node.lineno}: SQL {' '.join(text.split())[:80]!r}")
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


def test_no_sql_outside_stores():
    found = [f"{path.relative_to(REPO)}: {v}" for path in files()
             for v in sql_strings(ast.parse(path.read_text(), str(path)))]
    assert not found, "outside stores/, call a function of stores/ that runs the query:\n" + "\n".join(found)


def test_the_sql_check_sees_sql_and_not_prose():
    source = ('"""Reads (SELECT, WITH, DESCRIBE): a docstring, not SQL."""\n'
              'def f(con, job, table):\n'
              '    con.execute("SELECT count(*) FROM samples WHERE job = ?", [job])\n'
              '    con.execute(f"""\n        INSERT INTO {table} VALUES (1)""")\n'
              '    con.execute("CREATE TABLE t (x INTEGER)")\n'
              '    con.execute(f"UPDATE {table} SET x = 1")\n'
              '    return "Select the rows from a job; WITH care, as before." + "SELECT ..."\n')
    assert [v.split(":")[0] for v in sql_strings(ast.parse(source))] == ["line 3", "line 4", "line 6", "line 7"]


def test_the_allowlist_names_files_that_exist():
    assert all((REPO / path).is_file() for path in ALLOWED)
