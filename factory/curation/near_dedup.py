"""Near duplicates: MinHash over normalized word shingles with rensa, LSH for candidates,
each candidate pair checked against the threshold on its exact shingle Jaccard (a 128-slot
MinHash estimate has a standard error of ~0.035 at J = 0.8, which would lose about half of
the pairs sitting right at the threshold)."""
from __future__ import annotations

import re

import numpy as np
from rensa import RMinHash

_WORD = re.compile(r"\w+")
SEED = 1234  # fixed: the same texts give the same clusters on every run


def shingles(text: str, n: int) -> list[str]:
    words = _WORD.findall(text.lower())
    if len(words) < n:
        return [" ".join(words)] if words else [""]
    return [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]


def bands_for(num_perm: int, threshold: float) -> int:
    """Bands b (rows r = num_perm / b) whose S-curve (1/b)^(1/r) sits below the threshold, so
    pairs at the threshold are found with probability >= ~0.99: recall over precision,
    since every candidate is checked against the threshold afterwards."""
    best = 1
    for b in range(1, num_perm + 1):
        if num_perm % b:
            continue
        r = num_perm // b
        if 1 - (1 - threshold ** r) ** b >= 0.99:
            best = b
            break
    return best


def sketches_of(sets: list[list[str]], num_perm: int) -> list[RMinHash]:
    """MinHash sketches of shingle lists (the per-text work; on_ray.py runs it on workers)."""
    return RMinHash.from_token_sets(sets, num_perm=num_perm, seed=SEED)


def candidate_pairs(sketches: list[RMinHash], threshold: float, num_perm: int) -> list[tuple[int, int]]:
    """LSH candidates (i, j), i < j, sorted: every pair whose digests agree on a whole band."""
    digests = np.array([s.digest() for s in sketches], dtype=np.uint32).reshape(len(sketches), num_perm)
    return banded_pairs(digests, bands_for(num_perm, threshold))


def banded_pairs(digests: np.ndarray, bands: int) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, sorted, of rows equal on every column of some band (num_perm /
    bands columns): the candidates of an LSH index, found by sorting each band's rows. rensa's
    RMinHashLSH held ~2.5 KB per text for 32 bands (bench/curation_rss.py: 254 MB at 100k,
    ~2.5 GB at 1M); this holds the digests (512 bytes a text at 128) and one band at a time.
    Exact band equality, so no hash collision adds or loses a candidate."""
    n, width = digests.shape
    rows = width // bands
    codes = []
    for b in range(bands):
        band = digests[:, b * rows:(b + 1) * rows]
        order = np.lexsort(band.T[::-1])
        ranked = band[order]
        same = np.all(ranked[1:] == ranked[:-1], axis=1)  # row k+1 equals row k on this band
        if not same.any():
            continue
        starts = np.flatnonzero(np.diff(np.concatenate([[0], same.astype(np.int8), [0]])) == 1)
        ends = np.flatnonzero(np.diff(np.concatenate([[0], same.astype(np.int8), [0]])) == -1) + 1
        for lo, hi in zip(starts.tolist(), ends.tolist()):  # a run of equal rows: every pair in it
            members = np.sort(order[lo:hi])
            i, j = np.triu_indices(len(members), 1)
            codes.append(members[i] * n + members[j])
    if not codes:
        return []
    found = np.unique(np.concatenate(codes))
    return list(zip((found // n).tolist(), (found % n).tolist()))


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b)


# Texts shingled at a time. Holding every text's shingle list and set at once cost ~8 KB per
# 30-word text (bench/curation_rss.py: +780 MB at 100k, ~8 GB at 1M); each chunk's sketches
# become rows of one digest array, and only candidates' shingle sets are rebuilt for the exact Jaccard.
SHINGLE_CHUNK = 10_000


def near_duplicate_pairs(ids: list[str], texts: list[str], threshold: float, shingle_words: int = 3,
                         num_perm: int = 128) -> list[tuple[str, str, float]]:
    """(ids[i], ids[j], exact Jaccard), i < j, sorted by (i, j), for pairs at or over threshold."""
    digests = np.empty((len(texts), num_perm), dtype=np.uint32)
    for start in range(0, len(texts), SHINGLE_CHUNK):
        chunk = sketches_of([shingles(t, shingle_words) for t in texts[start:start + SHINGLE_CHUNK]], num_perm)
        digests[start:start + len(chunk)] = [s.digest() for s in chunk]
    exact: dict[int, frozenset] = {}

    def shingle_set(i: int) -> frozenset:
        if i not in exact:
            exact[i] = frozenset(shingles(texts[i], shingle_words))
        return exact[i]

    pairs = []
    for i, j in banded_pairs(digests, bands_for(num_perm, threshold)):
        similarity = jaccard(shingle_set(i), shingle_set(j))
        if similarity >= threshold:
            pairs.append((ids[i], ids[j], similarity))
    return pairs
