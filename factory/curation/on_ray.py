"""A curation pass's per-text work on a Ray cluster (`factory curate --address ADDR`).

Ray Data `map_batches` runs, on the cluster's workers: MinHash sketches (shingling and
hashing every text) and the exact shingle Jaccard of each LSH candidate pair, MiniLM
embeddings, and the benchmark n-gram look-ups. What comes back to the driver is small and
positional: pickled sketches, one similarity per candidate, vectors, hits. The driver
keeps the rest (the LSH index, clusters, scores) and stays the only DuckDB writer: the
pass is still one write_curation transaction, after all the Ray work has returned, so a
pass killed midway leaves the previous curation state as it was.

Same result as the single-process pass, by construction: the same functions run on the
same inputs (near_dedup.sketches_of / jaccard, decontaminate.first_shared, embed on
semantic_dedup.encode_groups, whose vectors are bit-identical to embed's), and every row
carries its position, so the driver rebuilds the single-process order whatever order Ray
returns blocks in. tests/curation/test_on_ray.py curates one job both ways.

Without an address nothing here runs: compute_for(None) is InProcess, which calls the
module functions the pass always called.
"""
from __future__ import annotations

import math
import os
import pickle

import numpy as np
import pyarrow as pa

from factory.curation import decontaminate, near_dedup, semantic_dedup

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # Ray 2.60 writes ~/.ray/auth_token unless told not to
# Ray Data logs a line per dataset run (and one for the progress bars turned off): a pass
# runs 3-5 datasets, and the CLI's output is its own summary lines. Read when ray.data loads.
os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")

# Texts per block and per Ray Data batch for MinHash, Jaccard and n-grams: 2,048 texts of
# ~100 words are ~0.5 s of work per task, so the ~ms per-task overhead stays under 1 %.
BATCH_TEXTS = 2048
# Encode batches (64 texts each, encode's own batching) per Ray Data batch for embeddings.
EMBED_GROUPS = 8


class InProcess:
    """The single-process pass: the module functions, looked up at call time."""

    def near_duplicate_pairs(self, ids, texts, threshold, shingle_words=3, num_perm=128):
        return near_dedup.near_duplicate_pairs(ids, texts, threshold, shingle_words, num_perm)

    def embed(self, texts):
        return semantic_dedup.embed(texts)

    def contamination_hits(self, ids, texts, benchmark, rows, sizes):
        return decontaminate.contamination_hits(ids, texts, benchmark, rows, sizes)


def compute_for(address: str | None):
    """InProcess without an address, else the same three calls on the Ray cluster there."""
    return InProcess() if address is None else OnRay(address)


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


class OnRay:
    """Joins the cluster at `address` unless this process is already connected to Ray (then
    that connection is used). The connection stays open for the process, as ray.init's does."""

    def __init__(self, address: str):
        import ray

        if not ray.is_initialized():
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                         configure_logging=True)
            except ConnectionError as err:
                raise ConnectionError(f"--address {address}: cannot join a Ray cluster there "
                                      f"({_first_line(err)})") from None
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))

    def _dataset(self, columns: dict, most_per_block: int):
        """(the dataset, its block count): blocks of at most most_per_block rows, and at least
        one per worker where there are rows enough."""
        import ray

        table = pa.table(columns)
        rows_per_block = max(1, min(most_per_block, math.ceil(table.num_rows / self.workers)))
        blocks = [table.slice(start, rows_per_block) for start in range(0, table.num_rows, rows_per_block)]
        return ray.data.from_arrow(blocks or [table]), max(1, len(blocks))

    @staticmethod
    def _collect(dataset, *columns: str) -> list[np.ndarray]:
        """Each column of the result, its blocks concatenated (in whatever order they came)."""
        batches = [b for b in dataset.iter_batches(batch_size=None, batch_format="numpy") if len(b[columns[0]])]
        if not batches:
            return [np.array([], dtype=np.int64) for _ in columns]
        return [np.concatenate([b[c] for b in batches]) for c in columns]

    def _actors(self, blocks: int):
        """One actor per cluster CPU (no more than blocks), for work that loads something once
        (a model, an index)."""
        import ray

        return ray.data.ActorPoolStrategy(size=min(self.workers, blocks))

    def near_duplicate_pairs(self, ids, texts, threshold, shingle_words=3, num_perm=128):
        if not texts:
            return []
        dataset, _ = self._dataset({"pos": np.arange(len(texts)), "text": texts}, BATCH_TEXTS)
        positions, blobs = self._collect(
            dataset.map_batches(_sketch_batch, batch_size=BATCH_TEXTS, batch_format="numpy",
                                fn_kwargs={"shingle_words": shingle_words, "num_perm": num_perm}, num_cpus=1),
            "pos", "sketch")
        sketches = [None] * len(texts)
        for pos, blob in zip(positions.tolist(), blobs):
            sketches[pos] = pickle.loads(blob)
        candidates = near_dedup.candidate_pairs(sketches, threshold, num_perm)
        if not candidates:
            return []
        pairs, _ = self._dataset({"k": np.arange(len(candidates)), "a": [texts[i] for i, _ in candidates],
                               "b": [texts[j] for _, j in candidates]}, BATCH_TEXTS)
        k, found = self._collect(pairs.map_batches(_jaccard_batch, batch_size=BATCH_TEXTS, batch_format="numpy",
                                                   fn_kwargs={"shingle_words": shingle_words}, num_cpus=1),
                                 "k", "similarity")
        similarity = np.empty(len(candidates))
        similarity[k] = found
        return [(ids[i], ids[j], float(s)) for (i, j), s in zip(candidates, similarity.tolist()) if s >= threshold]

    def embed(self, texts):
        if not texts:
            return semantic_dedup.embed(texts)
        groups = semantic_dedup.encode_groups(texts)
        dataset, blocks = self._dataset({"pos": [g.tolist() for g in groups],
                                 "texts": [[texts[i] for i in g] for g in groups]}, EMBED_GROUPS)
        positions, found = self._collect(
            dataset.map_batches(_Embedder, batch_size=EMBED_GROUPS, batch_format="numpy",
                                compute=self._actors(blocks), num_cpus=1), "pos", "vector")
        vectors = np.empty((len(texts), semantic_dedup.DIMENSIONS), dtype=np.float32)
        vectors[positions] = found
        return vectors

    def contamination_hits(self, ids, texts, benchmark, rows, sizes):
        if not texts or not rows:
            return []
        dataset, blocks = self._dataset({"pos": np.arange(len(texts)), "text": texts}, BATCH_TEXTS)
        columns = self._collect(
            dataset.map_batches(_NgramHits, batch_size=BATCH_TEXTS, batch_format="numpy",
                                fn_constructor_kwargs={"rows": rows, "sizes": sorted(set(sizes))},
                                compute=self._actors(blocks), num_cpus=1), "n", "pos", "row", "gram")
        found = sorted(zip(*(c.tolist() for c in columns)))  # the single-process order: by n, then by sample
        return [decontaminate.Hit(ids[pos], benchmark, row, n, gram) for n, pos, row, gram in found]


# What the workers run (module-level: workers import them by name from the installed package).

def _sketch_batch(batch: dict, shingle_words: int, num_perm: int) -> dict:
    sets = [near_dedup.shingles(t, shingle_words) for t in batch["text"]]
    sketches = near_dedup.sketches_of(sets, num_perm)
    return {"pos": batch["pos"], "sketch": np.array([pickle.dumps(s) for s in sketches], dtype=object)}


def _jaccard_batch(batch: dict, shingle_words: int) -> dict:
    similarity = [near_dedup.jaccard(frozenset(near_dedup.shingles(a, shingle_words)),
                                     frozenset(near_dedup.shingles(b, shingle_words)))
                  for a, b in zip(batch["a"], batch["b"])]
    return {"k": batch["k"], "similarity": np.array(similarity, dtype=np.float64)}


class _Embedder:
    """One MiniLM per worker, loaded once; each row is one of encode's own batches."""

    def __init__(self):
        semantic_dedup._model()

    def __call__(self, batch: dict) -> dict:
        pos = np.concatenate([np.asarray(p, dtype=np.int64) for p in batch["pos"]])
        vectors = np.concatenate([semantic_dedup.embed(list(texts)) for texts in batch["texts"]])
        return {"pos": pos, "vector": vectors}


class _NgramHits:
    """The benchmark's n-gram indexes, built once per worker from its rows."""

    def __init__(self, rows: list[str], sizes: list[int]):
        self.indexes = [(n, decontaminate.ngram_index(rows, n)) for n in sizes]

    def __call__(self, batch: dict) -> pa.Table:
        pos, size, row, gram = [], [], [], []
        for p, text in zip(batch["pos"].tolist(), batch["text"]):
            for n, index in self.indexes:
                found = decontaminate.first_shared(text, n, index)
                if found:
                    pos.append(p), size.append(n), row.append(found[0]), gram.append(found[1])
        return pa.table({"pos": pa.array(pos, pa.int64()), "n": pa.array(size, pa.int64()),
                         "row": pa.array(row, pa.int64()), "gram": pa.array(gram, pa.string())})
