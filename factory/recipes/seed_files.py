"""Reading user seed files line by line: a malformed line is a reason, never a crash."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=16)
def read_lines(path: str) -> tuple[str, ...]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"seed file {p} does not exist")
    return tuple(p.read_text(encoding="utf-8").splitlines())


def jsonl_record(path: str, line_number: int, line: str, required: tuple[str, ...]) -> dict | str:
    """The JSON object of one line, or a reason naming the file and the line (1-based)."""
    where = f"{path}:{line_number}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        return f"{where}: not JSON ({err.msg})"
    if not isinstance(record, dict):
        return f"{where}: expected a JSON object"
    missing = [k for k in required if not isinstance(record.get(k), str) or not record[k].strip()]
    if missing:
        return f"{where}: missing or empty field(s) {', '.join(missing)}; fields present: {', '.join(sorted(record)) or 'none'}"
    return record
