"""One curation pass over a job: scores, near and semantic clusters, contamination, then
the final composite scores, written in one transaction.

A pass replaces the job's contamination flags. It never drops one silently: when flags go,
the summary's `contamination_change` says how many and why (the benchmark list changed, or
the same list now reads differently)."""
from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np

from factory.curation import against, decontaminate, near_dedup, semantic_dedup
from factory.curation.clusters import clusters_from_pairs
from factory.curation.on_ray import compute_for
from factory.curation.quality import SampleSignals, parse_checks, quality
from factory.recipes.registry import find_recipe
from factory.spec import CurationSpec
from stores.curation import (cached_benchmark_embeddings, contamination_flags, embedding_matrix, last_pass_config,
                             sample_signals, write_curation)
from stores.memory_limit import bounded_memory


def benchmark_list(config: dict) -> tuple:
    """What makes a pass's contamination flags: each benchmark's name, path and field, the
    n-gram sizes and the semantic threshold (None: off), which matter only when some benchmark
    is listed. `config` is a CurationSpec as JSON, the form curation_runs.config stores; one
    from before semantic decontamination has no such key and did no semantic check."""
    files = sorted((b.get("name") or b["path"].rsplit("/", 1)[-1], b["path"], b.get("field") or "")
                   for b in config.get("decontaminate") or [])
    sizes = tuple(sorted(set(config.get("contamination_ngrams") or []))) if files else ()
    semantic = config.get("contamination_similarity") if files and config.get("semantic_contamination") else None
    return tuple(files), sizes, semantic


def _describe(benchmarks: tuple, detailed: bool) -> str:
    files, sizes, semantic = benchmarks
    if not files:
        return "none"
    if not detailed:
        return ", ".join(name for name, _, _ in files)
    listed = ", ".join(f"{name} ({path}, field {field or 'default'})" for name, path, field in files)
    method = f" and cosine >= {semantic}" if semantic is not None else ""
    return f"{listed}; {','.join(map(str, sizes))}-grams{method}"


def contamination_change(previous: dict | None, config: dict, before: set, after: set) -> str | None:
    """The line a pass owes when its flags differ from the last pass's list or lose some;
    None when the list is unchanged and no flag went (or on a job's first pass)."""
    removed, added = len(before - after), len(after - before)
    old, new = (benchmark_list(previous) if previous is not None else None), benchmark_list(config)
    counts = f"{removed} flags removed" + (f", {added} added" if added else "")
    if old is not None and old != new:
        detailed = _describe(old, False) == _describe(new, False)  # same names: show paths, fields, methods
        return f"benchmark list changed (was {_describe(old, detailed)}; now {_describe(new, detailed)}): {counts}"
    if removed:
        why = "no earlier pass recorded" if old is None else "benchmark list unchanged"
        return (f"{why}, but {counts}: the benchmark files read differently now "
                "(contents changed, or a relative path reached another file)")
    return None


# DuckDB's memory_limit during a pass (restored after it, also after a failure). Its default,
# 80% of RAM (18.8 GiB here), let the buffer pool keep ~0.9 GB of the blocks a 1M-sample pass
# read (the samples' texts, 1.5 GB of cached vectors, then the write's blocks): 5,249 MB peak
# against 3,914 MiB with 1GB and 3,429 MiB with 512MB, same summary, and no slower (141.6 s
# on a quiet box; bench/curation_rss.py, docs/benchmarks.md). The pass's own queries are
# scans and one write transaction, which spill to DB.tmp above the limit instead of failing,
# so a bigger store still curates.
MEMORY_LIMIT = "512MB"


def curate(con, job: str, recipe: str, config: CurationSpec, store_with_job: bool = False,
           address: str | None = None) -> dict:
    """con: a stores.Store, or a connection (the stores functions it calls take either).
    store_with_job: `config` is the job YAML's; it becomes the job's stored settings.
    address: a Ray cluster's; MinHash, embeddings and n-gram look-ups run there (on_ray.py),
    with the same result; None (the default): all in this process."""
    with bounded_memory(con, MEMORY_LIMIT):
        return _curate(con, job, recipe, config, store_with_job, address)


def _curate(con, job: str, recipe: str, config: CurationSpec, store_with_job: bool, address: str | None) -> dict:
    # Benchmarks first: a missing file or field fails before any work or write.
    benchmarks = [(b.name or b.path.rsplit("/", 1)[-1], b.path, *decontaminate.read_benchmark(b.path, b.field))
                  for b in config.decontaminate]
    # So are the outside sources (an unknown job, a corpus file without its field: exit 2).
    outside_sources = against.read_sources(con, job, config)
    rows = sample_signals(con, job)
    recipe_cls = find_recipe(recipe)
    signals = {r[0]: SampleSignals(r[0], r[5], r[6], r[7], parse_checks(r[4]), removed=r[3] is not None,
                                   likelihood=r[8]) for r in rows}
    base = {sid: quality(s, config.weights, recipe_cls)[0] for sid, s in signals.items()}
    order = {r[0]: r[1] for r in rows}
    candidates = [(r[0], r[2]) for r in rows if r[3] is None]  # exact duplicates are already out
    ids, texts = [c[0] for c in candidates], [c[1] for c in candidates]
    # The 1M tuples of 9 fields (and the candidates' 1M pairs) go before near dedup, whose
    # allocations reuse their memory; the summary needs only these two counts of them.
    samples, exact_duplicates = len(rows), sum(1 for r in rows if r[3] is not None)
    del rows, candidates

    compute = compute_for(address)  # the per-text work: here, or on the Ray cluster at address
    near_pairs = compute.near_duplicate_pairs(ids, texts, config.near_threshold, config.shingle_words,
                                              config.num_perm)

    # One set of sample embeddings serves semantic dedup and semantic decontamination; it is
    # computed when either needs it (dedup may be off) and stored, so a later pass embeds nothing.
    semantic_bench = config.semantic_contamination and any(b[3] for b in benchmarks)
    new_vectors: dict[str, np.ndarray] = {}
    vectors = None
    if ids and (config.semantic or semantic_bench):
        vectors, found = embedding_matrix(con, semantic_dedup.MODEL_NAME, ids)  # one array, filled in place
        missing = np.flatnonzero(~found).tolist()
        if missing:
            embedded = compute.embed([texts[k] for k in missing])
            new_vectors = dict(zip([ids[k] for k in missing], embedded))
            vectors[missing] = np.asarray(embedded, dtype=np.float32).reshape(-1, vectors.shape[1])
    # Duplicates of outside texts (other jobs, corpus files) are removed outright; the in-job
    # clusters form among the samples left (their pairs without the removed), so each keeps one.
    outside = against.find(con, outside_sources, job, ids, texts, vectors, config)
    gone = outside.removed
    members = [{"method": "near", **asdict(m)} for m in clusters_from_pairs(_without(near_pairs, gone), base, order)]
    if config.semantic and ids:
        semantic_pairs = _without(semantic_dedup.similar_pairs(ids, vectors, config.semantic_threshold), gone)
        members += [{"method": "semantic", **asdict(m)} for m in clusters_from_pairs(semantic_pairs, base, order)]

    hits = []
    for name, _, _, bench_rows in benchmarks:
        hits += [asdict(h) for h in compute.contamination_hits(ids, texts, name, bench_rows,
                                                               config.contamination_ngrams)]
    new_bench: list[tuple] = []
    if semantic_bench and vectors is not None:
        new_bench = _semantic_contamination(con, benchmarks, ids, vectors, config.contamination_similarity, hits,
                                            compute.embed)
    # Nothing below reads the vectors (1.5 GB at 1M; the embeddings to store are new_vectors'
    # and outside's own), the texts or the ids: they go before the write builds its frames.
    del vectors, texts, ids
    settings = config.model_dump(mode="json")
    change = contamination_change(last_pass_config(con, job), settings, contamination_flags(con, job),
                                  {(h["sample_id"], h["benchmark"], h["ngram_size"]) for h in hits})
    removed = {m["sample_id"] for m in members if not m["kept"]} | {h["sample_id"] for h in hits} | gone
    scores = []
    for sid, s in signals.items():
        s.removed = s.removed or sid in removed
        score, components = quality(s, config.weights, recipe_cls)
        scores.append({"sample_id": sid, "job": job, "score": score, "components": json.dumps(components)})
    for m in members:
        m["job"] = job
    for h in hits:
        h["job"] = job
    summary = {
        "samples": samples, "exact_duplicates": exact_duplicates,
        "near_clusters": len({m["cluster_id"] for m in members if m["method"] == "near"}),
        "near_removed": sum(1 for m in members if m["method"] == "near" and not m["kept"]),
        "semantic_clusters": len({m["cluster_id"] for m in members if m["method"] == "semantic"}),
        "semantic_removed": sum(1 for m in members if m["method"] == "semantic" and not m["kept"]),
        "contaminated": len({h["sample_id"] for h in hits}), "contamination_hits": len(hits),
        "semantic_contaminated": len({h["sample_id"] for h in hits if h["method"] == "semantic"}),
    }
    if outside_sources or config.against_jobs:
        summary["against"] = against.describe(outside_sources)
        summary["outside_removed"] = len(gone)
        for method in ("exact", "near", "semantic"):
            summary[f"outside_{method}"] = sum(1 for r in outside.rows if r["method"] == method)
    if change:
        summary["contamination_change"] = change
    write_curation(con, job, semantic_dedup.MODEL_NAME, {**outside.sample_vectors, **new_vectors}, members, hits,
                   scores, settings, summary, store_with_job, new_bench + outside.file_vectors, outside=outside.rows)
    return summary


def _without(pairs: list[tuple[str, str, float]], gone: set[str]) -> list[tuple[str, str, float]]:
    """The pairs among the samples left once those in `gone` are out."""
    return [p for p in pairs if p[0] not in gone and p[1] not in gone] if gone else pairs


def _semantic_contamination(con, benchmarks: list[tuple], ids: list[str], vectors: np.ndarray, threshold: float,
                            hits: list[dict], embed=None) -> list[tuple]:
    """Adds each benchmark's semantic hits to `hits`; returns the benchmark embeddings this
    pass computed, (file_sha256, field, vectors), for write_curation to cache. A file is
    embedded once per content: the cache is keyed by its SHA-256, the field and the model
    (GSM8K train, 7,473 rows, is ~25 s to embed and ~0.1 s to read back)."""
    computed: dict[tuple[str, str], np.ndarray] = {}
    for name, path, field, bench_rows in benchmarks:
        if not bench_rows:
            continue
        key = (decontaminate.file_sha256(path), field)
        row_vectors = computed.get(key)
        if row_vectors is None:
            row_vectors = cached_benchmark_embeddings(con, *key, semantic_dedup.MODEL_NAME, len(bench_rows))
        if row_vectors is None:
            row_vectors = computed[key] = (embed or semantic_dedup.embed)(bench_rows)
        hits += [asdict(h) for h in decontaminate.semantic_hits(ids, vectors, name, bench_rows, row_vectors,
                                                                threshold)]
    return [(sha, field, v) for (sha, field), v in computed.items()]
