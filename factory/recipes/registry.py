"""The recipe registry: built-ins, entry points in the group `factory.recipes`, and
`module:Class` / `path/file.py:Class` references. The error for an unknown name lists what
exists and where plugins are looked for."""
from __future__ import annotations

from factory.plugins import (PluginError, did_you_mean, entry_point_names, is_reference, load_entry_point,
                             load_reference)
from factory.recipes.base import Recipe

GROUP = "factory.recipes"
BUILT_IN = {
    "tinystories": "factory.recipes.tinystories:TinyStories",
    "textbook": "factory.recipes.textbook:Textbook",
    "math": "factory.recipes.math:Math",
    "instruct": "factory.recipes.instruct:Instruct",
    "preference": "factory.recipes.preference:Preference",
}


def _checked(obj, name: str, source: str) -> type[Recipe]:
    if not (isinstance(obj, type) and issubclass(obj, Recipe)):
        raise PluginError(f"recipe {name!r}: {source} is not a Recipe subclass (factory.recipes.base.Recipe)")
    obj.source = source
    if not obj.name:
        obj.name = name
    return obj


def find_recipe(name: str, base_dir: str | None = None) -> type[Recipe]:
    if name in BUILT_IN:
        return _checked(load_reference(BUILT_IN[name]), name, "built-in")
    if is_reference(name):
        return _checked(load_reference(name, base_dir, "recipe"), name, name)
    plugins = entry_point_names(GROUP)
    if name in plugins:
        return _checked(load_entry_point(GROUP, name, "recipe"), name, f"entry point {plugins[name].value}")
    known = ", ".join([*BUILT_IN, *sorted(plugins)])
    raise PluginError(f"unknown recipe {name!r}{did_you_mean(name, [*BUILT_IN, *plugins])}: known recipes are "
                      f"{known}; plugins are found in the entry point "
                      f"group {GROUP} of installed packages, or name one as module:Class or path/file.py:Class")


def all_recipes() -> list[type[Recipe]]:
    """Built-ins and every entry-point recipe (a plugin that fails to import raises)."""
    found = [find_recipe(name) for name in BUILT_IN]
    return found + [find_recipe(name) for name in sorted(entry_point_names(GROUP)) if name not in BUILT_IN]
