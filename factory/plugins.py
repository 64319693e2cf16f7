"""Finding user code: `module:Class`, `path/to/file.py:Class` (relative to the job file's
folder) and entry points. Shared by the recipe and backend registries."""
from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path


class PluginError(ValueError):
    """A plugin that cannot be found or imported: one line naming it and why."""
    exit_code = 2  # bad input: nothing written (factory/cli.py's codes)


def is_reference(name: str) -> bool:
    return ":" in name


def load_reference(ref: str, base_dir: str | None = None, what: str = "plugin"):
    """`module:Attr` or `file.py:Attr` -> the object."""
    target, _, attr = ref.rpartition(":")
    if not target or not attr:
        raise PluginError(f"{what} {ref!r}: expected module:Class or path/to/file.py:Class")
    if target.endswith(".py"):
        path = Path(target).expanduser()
        if not path.is_absolute() and base_dir:
            path = Path(base_dir) / path
        if not path.is_file():
            raise PluginError(f"{what} {ref!r}: no file {path}")
        module = _import_file(path, what, ref)
    else:
        try:
            module = importlib.import_module(target)
        except Exception as err:  # noqa: BLE001 - any import failure is the plugin's, reported in one line
            raise PluginError(f"{what} {ref!r}: module {target} failed to import: "
                              f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        classes = [n for n, v in vars(module).items() if isinstance(v, type) and not n.startswith("_")]
        raise PluginError(f"{what} {ref!r}: {target} has no {attr}{did_you_mean(attr, classes)}") from None


def did_you_mean(name: str, choices) -> str:
    """'; did you mean X?' for the closest of choices (difflib), or ''."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    if not close:
        close = [c for c in choices if c.lower() == name.lower()]
    return f"; did you mean {close[0]}?" if close else ""


# Folders of user files imported by path: each is put on sys.path, so a recipe or backend
# file may import a module next to it, and shipped to Ray workers (ray_runtime_env).
USER_DIRS: list[str] = []


def add_user_dir(folder) -> None:
    folder = str(Path(folder).resolve())
    if folder not in sys.path:
        sys.path.append(folder)  # after the installed packages: a user file never shadows one
    if folder not in USER_DIRS:
        USER_DIRS.append(folder)


def ray_runtime_env(upload: bool) -> dict | None:
    """What Ray workers need to import the user's modules (None without user folders): on
    this machine, the folders on PYTHONPATH; for a cluster joined by address, whose machines
    lack the driver's paths, the recipe's (first) folder uploaded as the workers'
    working_dir, its databases left out (Ray uploads only in ray.init's runtime_env)."""
    if not USER_DIRS:
        return None
    if upload:
        return {"working_dir": USER_DIRS[0], "excludes": ["*.duckdb", "*.duckdb.*", "*.wal", "__pycache__", ".git"]}
    import os

    return {"env_vars": {"PYTHONPATH": os.pathsep.join([*USER_DIRS, *filter(None, [os.environ.get("PYTHONPATH")])])}}


def _import_file(path: Path, what: str, ref: str):
    path = path.resolve()
    add_user_dir(path.parent)
    # A stable module name per file: the same file imported twice is one module.
    name = "factory_user_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001
        del sys.modules[name]
        line = getattr(err, "lineno", None)
        where = f"{path}:{line}" if line else str(path)
        raise PluginError(f"{what} {ref!r}: {where} failed to import: {type(err).__name__}: "
                          f"{str(err).splitlines()[0] if str(err) else ''}") from None
    return module


def entry_point_names(group: str) -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group=group)}


def load_entry_point(group: str, name: str, what: str):
    ep = entry_point_names(group)[name]
    try:
        return ep.load()
    except Exception as err:  # noqa: BLE001
        raise PluginError(f"{what} {name!r} (entry point {ep.value} in group {group}) failed to import: "
                          f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None
