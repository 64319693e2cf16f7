"""Named, versioned Jinja2 prompt templates shipped under prompts/ (inside the wheel).

`tinystories/reviewer@1` is the file prompts/tinystories/reviewer.v1.jinja. A template has
two blocks, `system` and `user`; each becomes one chat message. The file's sha256 enters
every request key and every row's lineage, so editing a template without bumping its
version still changes the cache key.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import jinja2

_NAME = re.compile(r"^(?P<name>[a-z0-9_]+(?:/[a-z0-9_]+)*)@(?P<version>[0-9]+)$")
_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: int
    sha256: str
    source: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

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
            raise ValueError(f"template {self.ref} must define a non-empty `user` block")
        return tuple(messages)


@lru_cache(maxsize=256)
def _compiled(source: str) -> jinja2.Template:
    # Compiling is ~1 ms a template; rendering a compiled one ~20 us.
    return _ENV.from_string(source)


def data_file(relative: str) -> str:
    """Text of a data file shipped under prompts/."""
    return resources.files("prompts").joinpath(relative).read_text(encoding="utf-8")


@lru_cache(maxsize=64)
def load_template(ref: str) -> PromptTemplate:
    match = _NAME.match(ref)
    if not match:
        raise ValueError(f"template {ref!r}: expected name@version, e.g. tinystories/reviewer@1")
    name, version = match["name"], int(match["version"])
    path = resources.files("prompts").joinpath(f"{name}.v{version}.jinja")
    if not path.is_file():
        raise ValueError(f"template {ref!r}: no file prompts/{name}.v{version}.jinja")
    source = path.read_text(encoding="utf-8")
    return PromptTemplate(name, version, hashlib.sha256(source.encode()).hexdigest()[:16], source)
