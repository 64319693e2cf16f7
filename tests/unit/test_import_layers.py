"""The import graph of factory/, stores/, roles/ and prompts/, read with `ast` (function-level
imports included, `if TYPE_CHECKING:` blocks left out), against the layer list of
docs/design-notes.md ("Layers"): no cycle, no import from a higher layer, every module in a
layer. An edge goes to the module imported (`from pkg import mod` is an edge to pkg.mod; a
package's own __init__ only when a name of it is imported)."""
import ast
import re
from pathlib import Path

from support import REPO

PACKAGES = ("factory", "stores", "roles", "prompts")
# reference_slip imports reference's number formatting inside a function. Both files' sha256
# are part of the reference backend's identity (backends/reference.py), so editing either
# changes the fingerprint and request keys of every job that uses it: this cycle stays.
KEPT_CYCLES = [["factory.backends.reference", "factory.backends.reference_slip"]]


def layers() -> list[list[str]]:
    text = (REPO / "docs/design-notes.md").read_text()
    section = text.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    items = re.split(r"\n(?=\d+\. )", "\n" + section)
    return [re.findall(r"`([a-z_.]+)`", item.split(":", 1)[0]) for item in items if re.match(r"\d+\. ", item)]


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _type_checking(node) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree) -> list:
    out, stack = [], [tree]
    while stack:
        node = stack.pop()
        if _type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()

    def ours(name: str) -> str | None:
        parts = name.split(".")
        for i in range(len(parts), 0, -1):
            if ".".join(parts[:i]) in mods:
                return ".".join(parts[:i])
        return None

    edges = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in _imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {ours(a.name) for a in node.names}
                continue
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in mods else ours(base))
        edges[name] = {t for t in targets if t and t != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on, stack, found, counter = {}, {}, set(), [], [], [0]

    def visit(root):
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for name in sorted(edges):
        if name not in index:
            visit(name)
    return sorted(found, key=len, reverse=True)


def layer_of() -> dict[str, int]:
    prefixes = {prefix: n for n, names in enumerate(layers(), 1) for prefix in names}

    def find(name: str) -> int | None:
        parts = name.split(".")
        for i in range(len(parts), 0, -1):
            if ".".join(parts[:i]) in prefixes:
                return prefixes[".".join(parts[:i])]
        return None

    return {name: find(name) for name in modules()}


def upward(edges, where) -> list[str]:
    return sorted(f"{a} (layer {where[a]}) -> {b} (layer {where[b]})" for a, targets in edges.items()
                  for b in targets if where[a] is not None and where[b] is not None and where[b] > where[a])


def test_the_layer_list_is_read_and_every_module_is_in_a_layer():
    assert len(layers()) == 9 and layers()[0] == ["roles", "prompts"]
    where = layer_of()
    assert not [name for name, n in where.items() if n is None]


def test_the_walk_sees_function_level_imports_and_finds_a_cycle():
    edges = graph()
    assert "factory.distill.ray_train" in edges["factory.distill.train"]  # imported inside train()
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle():
    assert [c for c in cycles(graph()) if c not in KEPT_CYCLES] == []


def test_no_import_from_a_higher_layer():
    assert upward(graph(), layer_of()) == []
