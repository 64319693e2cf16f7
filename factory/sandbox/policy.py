"""Static policy: the AST pre-check and the builtins a program may see.

Stdlib-only and free of package-relative imports: child.py loads this file
in the isolated (-I -S) child interpreter, where `factory` is not importable.
"""
from __future__ import annotations

import ast
import _string  # the parser str.format and string.Formatter use

# Builtins exposed to generated code. Left out on purpose: getattr/setattr/
# delattr/hasattr/vars/dir/globals/locals (string-keyed attribute and
# namespace access), eval/exec/compile, open/input/breakpoint/help, type and
# id (introspection), memoryview.
SAFE_BUILTIN_NAMES = frozenset({
    "abs", "all", "any", "bin", "bool", "bytearray", "bytes", "chr", "complex", "dict", "divmod",
    "enumerate", "filter", "float", "format", "frozenset", "hash", "hex",
    "int", "isinstance", "issubclass", "iter", "len", "list", "map", "max",
    "min", "next", "object", "oct", "ord", "pow", "print", "range", "repr",
    "reversed", "round", "set", "slice", "sorted", "str", "sum", "tuple",
    "zip", "property", "staticmethod", "classmethod", "super",
    "__build_class__",  # needed for `class` statements
    "ArithmeticError", "AssertionError", "AttributeError", "Exception",
    "IndexError", "KeyError", "LookupError", "NameError",
    "NotImplementedError", "OverflowError", "RecursionError", "RuntimeError",
    "StopIteration", "TypeError", "ValueError", "ZeroDivisionError",
    "NotImplemented", "Ellipsis",
})

BANNED_NAMES = frozenset({
    "getattr", "setattr", "delattr", "hasattr", "eval", "exec", "compile",
    "open", "globals", "locals", "vars", "dir", "breakpoint", "input", "help",
    "memoryview", "type", "id", "exit", "quit",
})

# Non-dunder attributes that lead from ordinary objects (generators,
# coroutines, frames, tracebacks, code) to frames and hence to the child's
# globals. Dunder attributes are rejected separately; single-underscore ones
# are allowed (self._total, point._asdict()) because module views handed out
# by the guarded import carry no `_` members (random._os, collections._sys).
BANNED_ATTRS = frozenset({
    "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await",
    "cr_origin", "ag_frame", "ag_code", "ag_await", "f_back", "f_globals",
    "f_locals", "f_builtins", "f_code", "f_trace", "tb_frame", "tb_next",
    "co_code", "co_consts", "co_names", "func_globals", "func_code",
    "im_func", "im_self",
})

# Dunders that expose nothing: `if __name__ == "__main__":` guards are common
# in generated code (the sandbox sets __name__ = "__sandbox__"), and
# super().__init__(...) in small classes.
ALLOWED_DUNDER_NAMES = frozenset({"__name__"})
ALLOWED_DUNDER_ATTRS = frozenset({"__init__", "__name__", "__doc__"})


class PolicyViolation(Exception):
    """The program uses a construct the sandbox does not allow."""


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _bad_attr(attr: str) -> bool:
    return attr in BANNED_ATTRS or (_is_dunder(attr) and attr not in ALLOWED_DUNDER_ATTRS)


def _format_walks(text: str, depth: int = 0):
    """Attribute names a format string walks: "{0.__globals__[x].y:{1.z}}" -> __globals__, y, z.
    Nothing for text that is not a valid format string (it cannot be used as one)."""
    if "{" not in text or depth > 2:  # format specs nest fields at most two levels deep
        return
    try:
        fields = list(_string.formatter_parser(text))
    except ValueError:
        return
    for _, name, spec, _ in fields:
        if name:
            try:
                _, rest = _string.formatter_field_name_split(name)
                walk = list(rest)
            except ValueError:
                walk = []
            yield from (key for is_attr, key in walk if is_attr)
        if spec:
            yield from _format_walks(spec, depth + 1)


def _check_import(name: str, allowed: frozenset[str], line: int) -> None:
    if name not in allowed:
        raise PolicyViolation(f"import of {name!r} is not allowed (line {line})")


def check_source(tree: ast.AST, allowed_imports: frozenset[str]) -> None:
    """Raise PolicyViolation for the first forbidden construct in `tree`."""
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            for alias in node.names:
                _check_import(alias.name, allowed_imports, line)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise PolicyViolation(f"relative import is not allowed (line {line})")
            _check_import(node.module or "", allowed_imports, line)
            for alias in node.names:
                if alias.name.startswith("_"):
                    raise PolicyViolation(
                        f"import of private name {alias.name!r} is not allowed (line {line})")
        elif isinstance(node, ast.Attribute):
            if _bad_attr(node.attr):
                raise PolicyViolation(
                    f"access to attribute {node.attr!r} is not allowed (line {line})")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            # "{0.__globals__}".format(f) walks attributes by name at run time, out of
            # reach of the Attribute check above (issue 23 C). A string built at run time
            # escapes this check; what such a walk can reach holds no secret (child.py).
            for attr in _format_walks(node.value):
                if _bad_attr(attr):
                    raise PolicyViolation(
                        f"format string walks to attribute {attr!r}, which is not allowed (line {line})")
        elif isinstance(node, ast.Name):
            if node.id in BANNED_NAMES or (
                    _is_dunder(node.id) and node.id not in ALLOWED_DUNDER_NAMES):
                raise PolicyViolation(f"use of name {node.id!r} is not allowed (line {line})")
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            for name in node.names:
                if _is_dunder(name):
                    raise PolicyViolation(f"use of name {name!r} is not allowed (line {line})")
        elif isinstance(node, ast.MatchClass):
            # `case C(__class__=x)` reads attributes by keyword name.
            for kw in node.kwd_attrs:
                if _bad_attr(kw):
                    raise PolicyViolation(
                        f"access to attribute {kw!r} is not allowed (line {line})")
