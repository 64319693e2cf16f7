"""The one-sided searches behind cross-job and corpus dedup: near (MinHash + exact Jaccard)
and semantic (cosine, exact and partitioned), on seeded synthetic data."""
import numpy as np

from factory.curation.cross_search import best_matches, near_matches


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_partitioned_finds_what_exact_finds():
    """4,000 targets, 400 queries that are noisy copies of targets (cosine ~0.97) and 400
    unrelated ones: the partitioned search finds >= 95% of the exact search's matches, and
    every match it reports is one the exact search reports too (both check cosines exactly)."""
    rng = np.random.default_rng(7)
    targets = unit(rng.normal(size=(4000, 64)))
    copies = unit(targets[rng.choice(4000, 400, replace=False)] + 0.03 * rng.normal(size=(400, 64)))
    queries = np.concatenate([copies, unit(rng.normal(size=(400, 64)))])
    eq, et, es = best_matches(queries, targets, 0.95, method="exact")
    pq, pt, ps = best_matches(queries, targets, 0.95, method="partitioned")
    exact = dict(zip(eq.tolist(), et.tolist()))
    assert len(exact) >= 390 and max(exact) < 400  # the copies match, the unrelated queries do not
    found = dict(zip(pq.tolist(), pt.tolist()))
    assert len(found) >= 0.95 * len(exact)
    assert all(exact[q] == t for q, t in found.items())


def test_ties_go_to_the_earliest_target():
    v = unit(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))
    q, t, s = best_matches(v[:1], v, 0.99, method="exact")
    assert q.tolist() == [0] and t.tolist() == [0] and s[0] > 0.99


def test_near_matches_take_the_best_candidate():
    story = ("the little dog ran to the park and found a red ball under the old oak tree and then he carried "
             "it home to show his sister who laughed and threw it back across the green garden again")
    words = story.split()
    one_word = " ".join(words[:10] + ["blue"] + words[11:])
    three_words = " ".join(words[:5] + ["x"] + words[6:20] + ["y"] + words[21:30] + ["z"] + words[31:])
    targets = ["something else entirely about ships", three_words, one_word]
    found = near_matches([story, "an unrelated line about the sea and the sky"], targets, 0.6)
    assert [(q, t) for q, t, _ in found] == [(0, 2)]
    assert found[0][2] > 0.8
