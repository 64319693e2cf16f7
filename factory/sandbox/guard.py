"""Runtime guards installed inside the child: audit hook, guarded import,
sanitised module views. Loaded by child.py; stdlib-only, no package imports.
"""
from __future__ import annotations

import builtins
import os
import sys
import types
from typing import Callable, NoReturn

# Events that ordinary arithmetic code triggers (measured on 3.11 with every
# allowed module): lazy stdlib imports ("import", "open", "marshal.loads",
# "exec"), collections.namedtuple ("compile", "exec", "object.__setattr__"),
# class attribute assignment ("object.__setattr__"/"__delattr__").
# Everything not listed here or handled below is denied: default-deny.
_HARMLESS_EVENTS = frozenset({
    "compile", "exec", "marshal.loads", "object.__setattr__",
    "object.__delattr__", "time.sleep", "sys.unraisablehook",
})

# Modules whose first import is refused even when the import comes from
# inside an allowed module (only reachable after an escape).
_DANGEROUS_MODULES = frozenset({
    "os", "posix", "subprocess", "_posixsubprocess", "socket", "_socket",
    "ssl", "_ssl", "select", "selectors", "ctypes", "_ctypes",
    "multiprocessing", "_multiprocessing", "_posixshmem", "threading",
    "_thread", "signal", "pty", "tty", "termios", "fcntl", "mmap", "resource",
    "shutil", "tempfile", "importlib", "pickle", "_pickle", "marshal",
    "shelve", "dbm", "sqlite3", "_sqlite3", "asyncio", "http", "urllib",
    "ftplib", "smtplib", "telnetlib", "poplib", "imaplib", "nntplib",
    "socketserver", "xmlrpc", "webbrowser", "code", "codeop", "pdb", "bdb",
    "inspect", "gc", "faulthandler", "tracemalloc", "pathlib", "glob",
    "zipfile", "tarfile", "_testcapi", "_xxsubinterpreters", "sys",
    "builtins", "io", "_io",
})

# Members removed from module views because they turn strings into attribute
# access or code (gadgets that bypass the AST check on dunder names).
_HIDDEN_MEMBERS = {
    "operator": frozenset({"attrgetter", "methodcaller"}),
    "string": frozenset({"Formatter"}),
    # update_wrapper/wraps copy attributes named by the caller; singledispatch
    # evaluates string annotations through typing.get_type_hints (an eval).
    "functools": frozenset({"update_wrapper", "wraps", "singledispatch",
                            "singledispatchmethod"}),
}

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

Deny = Callable[[str], NoReturn]


def _within(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def make_audit_hook(deny: Deny, workdir: str, read_roots: tuple[str, ...]):
    """Return an audit hook; `deny` never returns (it reports and _exits)."""
    realpath, fsdecode = os.path.realpath, os.fsdecode
    harmless, dangerous = _HARMLESS_EVENTS, _DANGEROUS_MODULES
    readable = (realpath(workdir),) + read_roots

    def hook(event: str, args: tuple) -> None:
        if event in harmless:
            return
        if event == "import":
            name = str(args[0])
            if name.partition(".")[0] in dangerous:
                deny(f"import of {name!r} is not allowed")
            return
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            if not isinstance(path, (str, bytes)):
                deny(f"opening file descriptor {path!r} is not allowed")
            path = fsdecode(path)
            writes = (mode is not None and any(c in str(mode) for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS)
            if writes:
                deny(f"opening {path!r} for writing is not allowed")
            if not _within(realpath(path), readable):
                deny(f"reading {path!r} is not allowed")
            return
        if event == "os.listdir":
            if not _within(realpath(fsdecode(args[0] or ".")), readable):
                deny(f"listing {args[0]!r} is not allowed")
            return
        if event == "object.__getattr__" and len(args) == 2:
            deny(f"access to attribute {args[1]!r} is not allowed")
        deny(f"{event} is not allowed")

    return hook


def _module_view(name: str, real: types.ModuleType) -> types.ModuleType:
    """Copy of a module's public, non-module members (`statistics.sys`,
    `re.enum.sys`, `random._os` would otherwise reach os and sys)."""
    view = types.ModuleType(name, getattr(real, "__doc__", None))
    hidden = _HIDDEN_MEMBERS.get(name, frozenset())
    for key, value in vars(real).items():
        if key.startswith("_") or key in hidden or isinstance(value, types.ModuleType):
            continue
        setattr(view, key, value)
    if name == "collections":
        namedtuple = real.namedtuple

        # namedtuple() infers __module__ via sys._getframe (denied by the
        # hook); pass it explicitly instead.
        def safe_namedtuple(typename, field_names, **kwargs):
            kwargs.setdefault("module", "__sandbox__")
            return namedtuple(typename, field_names, **kwargs)

        view.namedtuple = safe_namedtuple
    return view


# C code (PyImport_Import) imports lazily through the *calling frame's*
# __import__, i.e. ours: datetime.strptime -> _strptime. These are imported up
# front and handed out only as helpers for the module that needs them; an
# `import _strptime` statement is still rejected by the AST check.
_HELPERS = {"datetime": ("_strptime",)}


def preimport(allowed: frozenset[str]) -> None:
    """Import allowed modules while still privileged: after the privilege
    drop the stdlib may be unreadable (e.g. under /root/.pyenv, mode 0700)."""
    # The parser imports unicodedata to NFKC-normalize a non-ASCII identifier (π, é, 价格);
    # imported after the drop it is "No module named 'unicodedata'" (issue 23 D). Imported
    # here it is only in sys.modules: the guarded import still refuses it to the program.
    names = set(allowed) | {"unicodedata"}
    for name in allowed:
        names.update(_HELPERS.get(name, ()))
    for name in sorted(names):
        try:
            __import__(name)
        except ImportError:
            pass


def make_guarded_import(deny: Deny, allowed: frozenset[str]):
    views: dict[str, types.ModuleType] = {}
    helpers = frozenset(h for name in allowed for h in _HELPERS.get(name, ()))

    def view(name: str) -> types.ModuleType:
        if name not in views:
            real = sys.modules.get(name)
            if real is None:
                __import__(name)
                real = sys.modules[name]
            views[name] = _module_view(name, real)
            parent, _, child = name.rpartition(".")
            if parent:
                top = view(parent) if parent in allowed else views.setdefault(
                    parent, types.ModuleType(parent))
                setattr(top, child, views[name])
        return views[name]

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level:
            deny("relative import is not allowed")
        if name in helpers and name in sys.modules:
            return sys.modules[name]
        if not isinstance(name, str) or name not in allowed:
            deny(f"import of {name!r} is not allowed")
        mod = view(name)
        if fromlist:
            return mod
        return views[name.partition(".")[0]] if "." in name else mod

    return guarded_import


def safe_builtins(names: frozenset[str], guarded_import) -> dict:
    table = {n: getattr(builtins, n) for n in names if hasattr(builtins, n)}
    table["__import__"] = guarded_import
    return table
