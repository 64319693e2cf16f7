"""Versioned Jinja2 prompt templates: the built-in ones under prompts/ (inside the wheel),
a user's `templates_dir`, or a template file named by path.

`tinystories/reviewer@1` is the file tinystories/reviewer.v1.jinja, looked up first in the
job's templates_dir (when it has one), then where the job's recipe keeps its templates (a
plugin's package data or a folder next to its file: `Recipe.templates`), then in prompts/. `./my_reviewer.jinja` (any name
ending in .jinja) is a file, relative to the job file's folder. A template has two blocks,
`system` and `user`; each becomes one chat message. The source's sha256 enters every
request key and every row's lineage, so editing a template without bumping its version
still changes the cache key.
"""
from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jinja2
from jinja2 import meta, nodes

_NAME = re.compile(r"^(?P<name>[a-z0-9_]+(?:/[a-z0-9_]+)*)@(?P<version>[0-9]+)$")
_VERSIONED_FILE = re.compile(r"^(?P<stem>.+)\.v(?P<version>[0-9]+)$")
_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)


class TemplateError(ValueError):
    """A template that cannot be used: one line naming the file, the line and what is wrong."""
    exit_code = 2  # bad input: nothing written (factory/cli.py's codes)


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: int
    sha256: str
    source: str
    origin: str = "built-in"  # built-in, or the file it was read from

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def variables(self) -> set[str]:
        """Names the template reads from its context."""
        return meta.find_undeclared_variables(_ENV.parse(self.source))

    def render(self, **variables) -> tuple[dict, ...]:
        template = _compiled(self.source)
        context = template.new_context(variables)
        messages = []
        for role in ("system", "user"):
            if role in template.blocks:
                text = "".join(template.blocks[role](context)).strip()
                if text:
                    messages.append({"role": role, "content": text})
        if not messages or messages[-1]["role"] != "user":
            raise TemplateError(f"template {self.ref} ({self.origin}) must define a non-empty `user` block")
        return tuple(messages)


@lru_cache(maxsize=256)
def _compiled(source: str) -> jinja2.Template:
    # Compiling is ~1 ms a template; rendering a compiled one ~20 us.
    return _ENV.from_string(source)


def data_file(relative: str) -> str:
    """Text of a data file shipped under prompts/."""
    return resources.files("prompts").joinpath(relative).read_text(encoding="utf-8")


def _from_source(name: str, version: int, source: str, origin: str) -> PromptTemplate:
    try:
        tree = _ENV.parse(source)
    except jinja2.TemplateSyntaxError as err:
        raise TemplateError(f"{origin}:{err.lineno}: template syntax error: {err.message}") from None
    # Checked here, when the job is loaded: found at the first render, the job had already
    # created its database (issue 23 E). Whether the block renders non-empty for given
    # variables is still render()'s check.
    blocks = {b.name: b for b in tree.find_all(nodes.Block)}
    user = blocks.get("user")
    if user is None or all(isinstance(n, nodes.Output) and all(isinstance(c, nodes.TemplateData) and not c.data.strip()
                                                               for c in n.nodes) for n in user.body):
        raise TemplateError(f"{origin}: template {name}@{version} must define a non-empty `user` block "
                            "({% block user %}...{% endblock %}); blocks found: "
                            f"{', '.join(sorted(blocks)) or 'none'}")
    return PromptTemplate(name, version, hashlib.sha256(source.encode()).hexdigest()[:16], source, origin)


def _read(path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TemplateError(f"{path}: not a UTF-8 text file") from None
    except OSError as err:
        raise TemplateError(f"{path}: cannot read the template ({err.strerror})") from None


def is_path_ref(ref: str) -> bool:
    return ref.endswith(".jinja")


def recipe_root(location: str | None):
    """Where a recipe's templates are: `package:folder` (package data, read through
    importlib.resources, so a zipped or installed package works) or an absolute folder."""
    if not location:
        return None
    if ":" in location and not Path(location).is_absolute():
        package, _, folder = location.partition(":")
        try:
            root = resources.files(package)
        except (ModuleNotFoundError, TypeError) as err:
            raise TemplateError(f"templates {location!r}: package {package} cannot be read ({err})") from None
        return root.joinpath(*[p for p in folder.split("/") if p]) if folder else root
    return Path(location)


def user_template_path(ref: str, base_dir: str | None = None, templates_dir: str | None = None,
                       recipe_templates: str | None = None):
    """The user's file a template ref resolves to (a .jinja path, or name@version found in
    templates_dir or the recipe's templates), or None: a built-in template (prompts/) or one
    that does not resolve. A recipe's template may be a package resource (a Traversable)."""
    if is_path_ref(ref):
        path = Path(ref).expanduser()
        if not path.is_absolute() and base_dir:
            path = Path(base_dir) / path
        return path if path.is_file() else None
    match = _NAME.match(ref)
    if not match:
        return None
    relative = f"{match['name']}.v{int(match['version'])}.jinja"
    if templates_dir:
        root = Path(templates_dir).expanduser()
        if not root.is_absolute() and base_dir:
            root = Path(base_dir) / root
        if (root / relative).is_file():
            return root / relative
    root = recipe_root(recipe_templates)
    if root is not None:
        path = root.joinpath(*relative.split("/"))
        if path.is_file():
            return path
    return None


def load_template(ref: str, base_dir: str | None = None, templates_dir: str | None = None,
                  recipe_templates: str | None = None) -> PromptTemplate:
    """ref: name@version (templates_dir first, then the recipe's templates, then prompts/) or a
    .jinja path (relative to base_dir). A user's file edited in place is read again (its size
    and mtime are part of the cache key)."""
    path = user_template_path(ref, base_dir, templates_dir, recipe_templates)
    try:
        stamp = (path.stat().st_mtime_ns, path.stat().st_size) if isinstance(path, Path) else None
    except OSError:
        stamp = None
    return _load_template(ref, base_dir, templates_dir, recipe_templates, stamp)


@lru_cache(maxsize=128)
def _load_template(ref: str, base_dir: str | None, templates_dir: str | None, recipe_templates: str | None,
                   stamp) -> PromptTemplate:
    if is_path_ref(ref):
        path = Path(ref).expanduser()
        if not path.is_absolute() and base_dir:
            path = Path(base_dir) / path
        if not path.is_file():
            raise TemplateError(f"template {ref!r}: no file {path}")
        stem = path.name[: -len(".jinja")]
        versioned = _VERSIONED_FILE.match(stem)
        name, version = (versioned["stem"], int(versioned["version"])) if versioned else (stem, 0)
        return _from_source(name, version, _read(path), str(path))
    match = _NAME.match(ref)
    if not match:
        raise TemplateError(f"template {ref!r}: expected name@version (e.g. tinystories/reviewer@1) "
                            f"or a path to a .jinja file")
    name, version = match["name"], int(match["version"])
    relative = f"{name}.v{version}.jinja"
    found = user_template_path(ref, base_dir, templates_dir, recipe_templates)
    if found is not None:
        in_package = recipe_templates and not Path(recipe_templates).is_absolute() and ":" in recipe_templates \
            and not (templates_dir and user_template_path(ref, base_dir, templates_dir) is not None)
        # a package's template is named package:folder/file, never by its install path
        origin = f"{recipe_templates.rstrip('/')}/{relative}" if in_package else str(found)
        return _from_source(name, version, _read(found), origin)
    path = resources.files("prompts").joinpath(relative)
    if not path.is_file():
        where = f"{templates_dir}/{relative} or " if templates_dir else ""
        where += f"{recipe_templates.rstrip('/')}/{relative} or " if recipe_templates else ""
        raise TemplateError(f"template {ref!r}: no file {where}prompts/{relative}{_closest_builtin(name, version)}")
    return _from_source(name, version, path.read_text(encoding="utf-8"), "built-in")


def _closest_builtin(name: str, version: int) -> str:
    """'; did you mean X@N?' for the closest built-in template name (difflib), or ''."""
    shipped = [f"{m['stem']}@{m['version']}" for path in _builtin_files()
               if (m := _VERSIONED_FILE.match(path[: -len(".jinja")]))]
    close = difflib.get_close_matches(f"{name}@{version}", shipped, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _builtin_files(folder=None, prefix: str = "") -> list[str]:
    """Every .jinja under the prompts package, as paths relative to it."""
    folder = folder or resources.files("prompts")
    found = []
    for entry in folder.iterdir():
        if entry.is_dir():
            found += _builtin_files(entry, f"{prefix}{entry.name}/")
        elif entry.name.endswith(".jinja"):
            found.append(prefix + entry.name)
    return found


def check_variables(template: PromptTemplate, provided: set[str], who: str) -> None:
    """A template that reads a variable nobody provides fails now, not at the first render."""
    missing = sorted(template.variables() - provided)
    if not missing:
        return
    name = missing[0]
    line = next((n for n, text in enumerate(template.source.splitlines(), start=1)
                 if re.search(rf"\b{re.escape(name)}\b", text)), "?")
    raise TemplateError(f"{template.origin}:{line}: template {template.ref} uses `{name}`, which {who} does not "
                        f"provide; available: {', '.join(sorted(provided)) or '(none)'}")
