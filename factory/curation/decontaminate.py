"""Benchmark decontamination: word n-gram overlap (8 and 13 by default, as TinyGSM and
phi-1 used) of every sample against the benchmark files a job names."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

_WORD = re.compile(r"\w+")


class BenchmarkError(ValueError):
    pass


@dataclass(frozen=True)
class Hit:
    sample_id: str
    benchmark: str
    benchmark_row: int
    ngram_size: int
    ngram: str


def _rows(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        import duckdb

        con = duckdb.connect()
        try:
            cur = con.execute("SELECT * FROM read_parquet(?)", [str(path)])
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r)) for r in cur.fetchall()]
        finally:
            con.close()
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise BenchmarkError(f"benchmark {path}:{n}: not JSON ({err.msg})") from None
    return rows


def load_benchmark(path: str, field: str | None = None) -> list[str]:
    """The texts of a benchmark file. GSM8K's format (question, answer) is understood:
    the default field is `question` when rows have one, else `text`."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise BenchmarkError(f"benchmark file {p} does not exist")
    rows = _rows(p)
    if not rows:
        return []
    fields = sorted(rows[0])
    name = field or ("question" if "question" in rows[0] else "text")
    if name not in rows[0]:
        raise BenchmarkError(f"benchmark {p} has no field {name!r}; its fields: {', '.join(fields)}")
    return [str(r.get(name) or "") for r in rows]


def ngrams(text: str, n: int) -> set[str]:
    words = _WORD.findall(text.lower())
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


def contamination_hits(ids: list[str], texts: list[str], benchmark: str, rows: list[str],
                       sizes: list[int]) -> list[Hit]:
    """One hit per (sample, n): the first benchmark row sharing an n-gram with it."""
    hits = []
    for n in sorted(set(sizes)):
        index: dict[str, int] = {}
        for row, text in enumerate(rows):
            for gram in ngrams(text, n):
                index.setdefault(gram, row)
        for sample_id, text in zip(ids, texts):
            shared = sorted(g for g in ngrams(text, n) if g in index)
            if shared:
                gram = min(shared, key=lambda g: (index[g], g))
                hits.append(Hit(sample_id, benchmark, index[gram], n, gram))
    return hits
