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
# A job nests a handful of levels (roles.generator.pool[0].endpoint). Deeper nesting is the
# wrong file or an attack: 10,000 nested lists in 50 KB made the YAML composer (recursive)
# and later json.dumps fail with "maximum recursion depth exceeded", naming nothing (issue 23 F).
MAX_SPEC_DEPTH = 64


def _kids(node):
    return node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()


def nested_deeper_than(data, limit: int) -> bool:
    """Whether lists and mappings nest more than `limit` levels, found without recursion.
    YAML anchors make a graph, not a tree: each container is measured once (`&a [*a, *a]`
    ten levels down is 2^10 paths, one node each) and a cycle (`&a [*a]`) is too deep."""
    if not isinstance(data, (dict, list)):
        return False
    if limit < 1:
        return True
    heights: dict[int, int] = {}  # id -> levels at and below a container already measured
    path = [[data, iter(_kids(data)), 0]]  # the containers from the root, each with its best child height
    on_path = {id(data)}
    while path:
        frame = path[-1]
        child = next(frame[1], path)  # `path` as the end marker: never a child
        if child is path:
            path.pop()
            on_path.discard(id(frame[0]))
            heights[id(frame[0])] = frame[2] + 1
            if path:
                path[-1][2] = max(path[-1][2], frame[2] + 1)
            continue
        if not isinstance(child, (dict, list)):
            continue
        if id(child) in on_path:
            return True  # a cycle: endlessly deep
        if id(child) in heights:  # measured under another parent: its depth here is ours plus its height
            frame[2] = max(frame[2], heights[id(child)])
            if len(path) + frame[2] > limit:
                return True
        else:
            path.append([child, iter(_kids(child)), 0])
            on_path.add(id(child))
            if len(path) > limit:
                return True
    return False


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
    too_deep = f"{path}: nested deeper than {MAX_SPEC_DEPTH} levels of lists and mappings: a {kind} file nests a few"
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:  # the composer recurses per level: ~300 levels exhaust the stack
        raise JobError(too_deep) from None
    except JobError as err:
        raise JobError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        raise JobError(f"{path}: {where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    if nested_deeper_than(data, MAX_SPEC_DEPTH):
        raise JobError(too_deep)
    return data
