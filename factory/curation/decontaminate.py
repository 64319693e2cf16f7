"""Benchmark decontamination of every sample against the benchmark files a job names: word
n-gram overlap (8 and 13 by default, as TinyGSM and phi-1 used), which catches copies with
numbers changed, and embedding similarity (all-MiniLM-L6-v2 cosine against each benchmark
row), which catches paraphrases that share no 8-gram (docs/benchmarks.md has the
threshold's measurement)."""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_WORD = re.compile(r"\w+")
SNIPPET_CHARS = 200  # of the benchmark row, stored as a semantic hit's `ngram`
BLOCK_ROWS = 1024    # samples per matmul: 1024 x 7,473 GSM8K rows is 31 MB of float32


class BenchmarkError(ValueError):
    exit_code = 1  # a runtime problem (factory/cli.py's codes)


@dataclass(frozen=True)
class Hit:
    sample_id: str
    benchmark: str
    benchmark_row: int
    ngram_size: int  # 0 for a semantic hit (the primary key's columns cannot be NULL)
    ngram: str       # the shared n-gram, or a semantic hit's benchmark row snippet
    method: str = "ngram"  # ngram | semantic
    similarity: float | None = None  # cosine, semantic hits only


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _parquet_rows(path: Path) -> list[dict]:
    import duckdb

    from stores.data_files import parquet_rows

    try:
        return parquet_rows(path)
    except duckdb.Error as err:  # not Parquet, truncated, a corrupt page: DuckDB's first line says which
        raise BenchmarkError(f"benchmark {path}: not a readable Parquet file ({_first_line(err)})") from None


def _jsonl_rows(path: Path) -> list[dict]:
    data = path.read_bytes()
    # A NUL byte never occurs in JSON text: the file is binary (a Parquet or archive named .jsonl).
    nul = data.find(b"\0")
    if nul >= 0:
        raise BenchmarkError(f"benchmark {path}: binary data (a NUL byte at offset {nul}), "
                             "expected JSON lines (one object per line) or a .parquet file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise BenchmarkError(f"benchmark {path}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset "
                             f"{err.start}), expected JSON lines (one object per line)") from None
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise BenchmarkError(f"benchmark {path}:{n}: not JSON ({err.msg})") from None
        except RecursionError:
            raise BenchmarkError(f"benchmark {path}:{n}: JSON nested too deeply") from None
        if not isinstance(row, dict):
            raise BenchmarkError(f"benchmark {path}:{n}: expected a JSON object, got {type(row).__name__}") from None
        rows.append(row)
    return rows


def _rows(path: Path) -> list[dict]:
    try:
        return _parquet_rows(path) if path.suffix == ".parquet" else _jsonl_rows(path)
    except OSError as err:  # unreadable: permissions, an I/O error
        raise BenchmarkError(f"benchmark {path}: cannot read ({err.strerror or _first_line(err)})") from None


def read_benchmark(path: str, field: str | None = None) -> tuple[str, list[str]]:
    """(the field read, the texts) of a benchmark file. GSM8K's format (question, answer) is
    understood: the default field is `question` when rows have one, else `text`."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise BenchmarkError(f"benchmark file {p} does not exist")
    rows = _rows(p)
    name = field or ("question" if rows and "question" in rows[0] else "text")
    if not rows:
        return name, []
    if name not in rows[0]:
        raise BenchmarkError(f"benchmark {p} has no field {name!r}; its fields: {', '.join(sorted(rows[0]))}")
    return name, [str(r.get(name) or "") for r in rows]


def load_benchmark(path: str, field: str | None = None) -> list[str]:
    """The texts of a benchmark file (read_benchmark without the field)."""
    return read_benchmark(path, field)[1]


def file_sha256(path: str) -> str:
    """What the benchmark embedding cache is keyed by: the file's bytes, not its name."""
    try:
        with open(Path(path).expanduser(), "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as err:
        raise BenchmarkError(f"benchmark {path}: cannot read ({err.strerror or _first_line(err)})") from None


def ngrams(text: str, n: int) -> set[str]:
    words = _WORD.findall(text.lower())
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


def ngram_index(rows: list[str], n: int) -> dict[str, int]:
    """Each n-gram of the benchmark rows -> the first row holding it."""
    index: dict[str, int] = {}
    for row, text in enumerate(rows):
        for gram in ngrams(text, n):
            index.setdefault(gram, row)
    return index


def first_shared(text: str, n: int, index: dict[str, int]) -> tuple[int, str] | None:
    """(row, n-gram) of the first benchmark row sharing an n-gram with text (ties: the
    smallest n-gram), or None. The per-text work, which on_ray.py runs on workers."""
    shared = sorted(g for g in ngrams(text, n) if g in index)
    if not shared:
        return None
    gram = min(shared, key=lambda g: (index[g], g))
    return index[gram], gram


def contamination_hits(ids: list[str], texts: list[str], benchmark: str, rows: list[str],
                       sizes: list[int]) -> list[Hit]:
    """One hit per (sample, n): the first benchmark row sharing an n-gram with it."""
    hits = []
    for n in sorted(set(sizes)):
        index = ngram_index(rows, n)
        for sample_id, text in zip(ids, texts):
            found = first_shared(text, n, index)
            if found:
                hits.append(Hit(sample_id, benchmark, found[0], n, found[1]))
    return hits


def semantic_hits(ids: list[str], vectors: np.ndarray, benchmark: str, rows: list[str], row_vectors: np.ndarray,
                  threshold: float) -> list[Hit]:
    """One hit per sample whose closest benchmark row has cosine >= threshold: that row, the
    similarity and a snippet of the row. Vectors are unit length (semantic_dedup.embed); blank
    benchmark rows (a missing field) never match."""
    if not ids or not rows:
        return []
    blank = np.array([not r.strip() for r in rows])
    hits = []
    for start in range(0, len(ids), BLOCK_ROWS):
        sims = vectors[start:start + BLOCK_ROWS] @ row_vectors.T
        sims[:, blank] = -1.0
        best = sims.argmax(axis=1)  # ties: the first row, so a pass is deterministic
        for k, row in enumerate(best.tolist()):
            similarity = float(sims[k, row])
            if similarity >= threshold:
                hits.append(Hit(ids[start + k], benchmark, row, 0, rows[row][:SNIPPET_CHARS], "semantic",
                                round(similarity, 6)))
    return hits
