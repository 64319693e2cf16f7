"""Recall of near_duplicate_pairs against EXACT 3-word-shingle Jaccard on a planted corpus.

The corpus: documents of 60-150 words drawn (Zipf, like real text) from a seeded vocabulary,
plus near-copies made by editing 1-15% of a base document's words. Each edit breaks up to
three shingles, so copies span J ~ 0.4-0.97 and many sit just above or below 0.8, where a
MinHash estimate alone would miss about half of them: the pairs that test the LSH bands.

Truth covers ALL pairs, not a sample: an inverted index over shingles finds every pair that
shares at least one shingle (any other pair has J = 0) and gives its exact intersection. A
random sample of pairs, computed the slow way, checks that index.
"""
from __future__ import annotations

import itertools
import random
from collections import Counter, defaultdict

import numpy as np
import pytest

from factory.curation.near_dedup import near_duplicate_pairs, shingles

THRESHOLD = 0.8
SHINGLE_WORDS = 3


def make_corpus(n_docs: int = 1500, n_planted: int = 300, vocab_size: int = 3000, seed: int = 7):
    """(ids, texts, planted) with planted = {planted id: (base id, edit rate)}."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = sorted({"".join(rng.choice(letters, rng.integers(3, 10))) for _ in range(vocab_size * 2)})
    vocab = [vocab[i] for i in rng.permutation(len(vocab))[:vocab_size]]
    weights = 1.0 / np.arange(1, vocab_size + 1)  # Zipf: the top word is ~12% of all words
    weights /= weights.sum()

    def words(k: int) -> list[str]:
        return [vocab[i] for i in rng.choice(vocab_size, size=k, p=weights)]

    docs = [words(int(rng.integers(60, 151))) for _ in range(n_docs)]
    ids = [f"d{i:06d}" for i in range(n_docs)]
    planted = {}
    for p in range(n_planted):
        base = int(rng.integers(n_docs))
        rate = float(rng.uniform(0.01, 0.15))
        edited = list(docs[base])
        for _ in range(max(1, round(rate * len(edited)))):
            op, pos = rng.integers(3), int(rng.integers(len(edited)))
            if op == 0:
                edited[pos] = words(1)[0]
            elif op == 1 and len(edited) > 3:
                del edited[pos]
            else:
                edited.insert(pos, words(1)[0])
        docs.append(edited)
        ids.append(f"p{p:06d}")
        planted[ids[-1]] = (ids[base], rate)
    return ids, [" ".join(d) for d in docs], planted


def exact_jaccards(texts: list[str]) -> dict[tuple[int, int], float]:
    """Exact Jaccard of every pair (i < j) sharing at least one shingle."""
    sets = [set(shingles(t, SHINGLE_WORDS)) for t in texts]
    postings = defaultdict(list)
    for i, s in enumerate(sets):
        for sh in s:
            postings[sh].append(i)
    shared = Counter()
    for docs in postings.values():
        if len(docs) > 1:
            shared.update(itertools.combinations(docs, 2))  # docs are in increasing order
    return {(i, j): n / (len(sets[i]) + len(sets[j]) - n) for (i, j), n in shared.items()}


def truth_pairs(ids: list[str], texts: list[str], threshold: float = THRESHOLD) -> set[tuple[str, str]]:
    return {(ids[i], ids[j]) for (i, j), jac in exact_jaccards(texts).items() if jac >= threshold}


@pytest.mark.slow  # checks the recall test's exact index on ~580k pairs: 85 s at load 7
def test_exact_index_agrees_with_brute_force_on_a_sample():
    ids, texts, planted = make_corpus()
    index = exact_jaccards(texts)
    sets = [frozenset(shingles(t, SHINGLE_WORDS)) for t in texts]
    rnd = random.Random(11)
    # 40k random pairs plus every pair involving a planted document (300 x 1,800 = 540k)
    sample = {tuple(sorted(rnd.sample(range(len(texts)), 2))) for _ in range(40_000)}
    sample |= {tuple(sorted((i, j))) for i in range(1500, len(texts)) for j in range(len(texts)) if i != j}
    for i, j in sample:
        jac = len(sets[i] & sets[j]) / len(sets[i] | sets[j])
        assert abs(index.get((i, j), 0.0) - jac) < 1e-12, (ids[i], ids[j])


def test_recall_against_exact_jaccard():
    ids, texts, planted = make_corpus()
    jaccards = exact_jaccards(texts)
    truth = {(ids[i], ids[j]) for (i, j), jac in jaccards.items() if jac >= THRESHOLD}
    exact_by_id = {(ids[i], ids[j]): jac for (i, j), jac in jaccards.items()}
    # a test that means something: enough true pairs, many of them right at the threshold
    assert len(truth) >= 50
    assert sum(1 for p in truth if exact_by_id[p] < 0.85) >= 10

    found = near_duplicate_pairs(ids, texts, THRESHOLD, shingle_words=SHINGLE_WORDS)
    got = {tuple(sorted((a, b))) for a, b, _ in found}
    for a, b, similarity in found:
        key = tuple(sorted((a, b)))
        assert exact_by_id[key] >= THRESHOLD and abs(similarity - exact_by_id[key]) < 1e-12, key
    recall = len(got & truth) / len(truth)
    print(f"\nnear-dup recall {recall:.4f} ({len(got & truth)}/{len(truth)} true pairs at J >= {THRESHOLD}; "
          f"{len(jaccards)} pairs share a shingle)")
    assert recall >= 0.95
