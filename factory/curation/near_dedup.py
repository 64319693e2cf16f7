"""Near duplicates: MinHash over normalized word shingles with rensa, LSH for candidates,
each candidate pair checked against the threshold on its exact shingle Jaccard (a 128-slot
MinHash estimate has a standard error of ~0.035 at J = 0.8, which would lose about half of
the pairs sitting right at the threshold)."""
from __future__ import annotations

import re

from rensa import RMinHash, RMinHashLSH

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
    """LSH candidates (i, j), i < j, in query order: every pair sharing a band."""
    lsh = RMinHashLSH(threshold=threshold, num_perm=num_perm, num_bands=bands_for(num_perm, threshold))
    for i, sketch in enumerate(sketches):
        lsh.insert(i, sketch)
    return [(i, j) for i, sketch in enumerate(sketches) for j in lsh.query(sketch) if j > i]


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b)


def near_duplicate_pairs(ids: list[str], texts: list[str], threshold: float, shingle_words: int = 3,
                         num_perm: int = 128) -> list[tuple[str, str, float]]:
    sets = [shingles(t, shingle_words) for t in texts]
    sketches = sketches_of(sets, num_perm)
    exact = [frozenset(s) for s in sets]
    pairs = []
    for i, j in candidate_pairs(sketches, threshold, num_perm):
        similarity = jaccard(exact[i], exact[j])
        if similarity >= threshold:
            pairs.append((ids[i], ids[j], similarity))
    return pairs
