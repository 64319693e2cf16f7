"""A DuckDB memory_limit bound for the length of one piece of work, then the old value back.

memory_limit is a GLOBAL setting (the whole database instance, every cursor of it), so the
previous value is restored in a finally, also when the work fails. Above the limit DuckDB
spills to its temp directory (next to the database file: DB.tmp) instead of failing, so big
queries still run; what the bound stops is the buffer pool keeping every block a pass read
(its default is 80% of RAM: 18.8 GiB here, and a 1M-sample curation pass's pool held ~0.9 GB,
bench/curation_rss.py)."""
from __future__ import annotations

import math
import re
from contextlib import contextmanager
from decimal import Decimal

from stores.handle import takes_store

# current_setting('memory_limit') shows binary units, truncated to one decimal ('953.6 MiB');
# SET also takes decimal ones (1GB = 10^9 bytes).
_UNITS = {"bytes": 1, "b": 1, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "pib": 2**50,
          "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_INT64_MAX = 2**63 - 1  # SET memory_limit = '-1' (no limit) shows as '16383.9 PiB'


def size_in_bytes(text: str) -> int:
    """'1GB' -> 10^9; a shown value with decimals ('953.6 MiB', truncated from somewhere in
    [953.6, 953.7) MiB) -> the middle of that range, which DuckDB shows as the same text again
    (SET '953.6 MiB' itself reads back as '953.5 MiB', and so does its byte count rounded up)."""
    match = re.fullmatch(r"\s*([0-9]+)(?:\.([0-9]+))?\s*([A-Za-z]+)\s*", text)
    if not match or match.group(3).lower() not in _UNITS:
        raise ValueError(f"memory_limit {text!r}: expected a number and one of {', '.join(_UNITS)}")
    whole, decimals, unit = match.group(1), match.group(2), _UNITS[match.group(3).lower()]
    if not decimals:
        return int(whole) * unit
    return math.floor((Decimal(f"{whole}.{decimals}") + Decimal(5) / 10 ** (len(decimals) + 1)) * unit)


def current_limit(con) -> str:
    return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]


@takes_store
@contextmanager
def bounded_memory(con, bound: str):
    """Lowers memory_limit to `bound` (never raises it: a smaller limit set by the caller
    stays) for the block, then restores it: by RESET when it was DuckDB's default (exact),
    else by SET of the byte count it showed (equal to what it showed before)."""
    previous = current_limit(con)
    con.execute("RESET memory_limit")
    default = current_limit(con)
    try:  # from here on the old value comes back, whatever fails
        lower = size_in_bytes(bound) < size_in_bytes(previous)
        con.execute(f"SET memory_limit = '{size_in_bytes(bound) if lower else size_in_bytes(previous)} bytes'")
        yield
    finally:
        if previous == default:
            con.execute("RESET memory_limit")
        else:
            limit = size_in_bytes(previous)
            con.execute(f"SET memory_limit = '{'-1' if limit >= _INT64_MAX else f'{limit} bytes'}'")
