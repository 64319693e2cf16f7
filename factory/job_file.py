"""Reading a spec file (job or distill YAML): one line naming the file for every problem:
a directory, a binary or non-UTF-8 file, a file too big, a YAML error, a duplicate key."""
from __future__ import annotations

from pathlib import Path

import yaml

from factory.job_errors import JobError


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML whose mappings may not repeat a key: the second `seed:` silently winning is a bug."""


def _no_duplicates(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise JobError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
        seen.add(key)
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)

MAX_SPEC_BYTES = 1_000_000  # a job file is a page of YAML; a bigger one is the wrong file


def read_yaml(path: str | Path, kind: str = "job"):
    """A spec file's YAML; every problem is one line naming the file (and the line)."""
    path = Path(path)
    if path.is_dir():
        raise JobError(f"{path}: is a directory, not a {kind} file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise JobError(f"{path}: no such {kind} file") from None
    except OSError as err:
        raise JobError(f"{path}: cannot read the {kind} file ({err.strerror})") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise JobError(f"{path}: {len(raw)} bytes is too big for a {kind} file (at most {MAX_SPEC_BYTES})")
    try:
        text = raw.decode("utf-8-sig")  # a BOM (Windows editors write one) is fine
    except UnicodeDecodeError as err:
        raise JobError(f"{path}: not a UTF-8 text file (byte {err.start}): a {kind} file is YAML text") from None
    if "\x00" in text:
        raise JobError(f"{path}: not a text file (it holds NUL bytes): a {kind} file is YAML text")
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except JobError as err:
        raise JobError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        raise JobError(f"{path}: {where}: not valid YAML ({getattr(err, 'problem', err)})") from None
