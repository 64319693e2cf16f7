"""docs/design-notes.md "Walk one batch" names the hops of `factory run` of the demo job as
`file:function`: every named function (or Class.method) exists in that file, read with
`ast`, and the hops are numbered 1..N with N the count the section states."""
import ast
import re

from support import REPO

NAMED = re.compile(r"`([\w/]+\.py):([\w.]+)`")


def section() -> str:
    text = (REPO / "docs/design-notes.md").read_text()
    return text.split("\n## Walk one batch\n", 1)[1].split("\n## ", 1)[0]


def defined(path) -> set[str]:
    """Qualified names of the functions and methods a file defines (Class.method, nested
    classes' methods too; functions inside functions are not hops one can name)."""
    names, stack = set(), [(ast.parse(path.read_text()), "")]
    while stack:
        node, prefix = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(prefix + child.name)
            elif isinstance(child, ast.ClassDef):
                stack.append((child, f"{prefix}{child.name}."))
    return names


def test_every_named_function_exists():
    named = NAMED.findall(section())
    assert len(named) > 40  # the section was read: it names 51
    missing = [f"{path}:{name}" for path, name in named
               if not (REPO / path).is_file() or name not in defined(REPO / path)]
    assert missing == []


def test_the_hops_are_numbered_in_order_and_counted():
    hops = re.findall(r"^(\d+)\. `[\w/]+\.py:[\w.]+`", section(), re.M)
    assert [int(n) for n in hops] == list(range(1, len(hops) + 1))
    assert re.search(rf"\b{len(hops)} hops\b", section())


def test_a_missing_function_is_found():
    assert "Store.write_batch" in defined(REPO / "stores/store.py")
    assert "Store.no_such_method" not in defined(REPO / "stores/store.py")
    assert "run_job" in defined(REPO / "factory/pipeline.py") and "commit" not in defined(REPO / "factory/pipeline.py")
