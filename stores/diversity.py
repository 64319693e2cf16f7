"""The diversity of stored embeddings, read by the stats of stores/curation_stats.py and
stores/summaries.py."""
from __future__ import annotations

import numpy as np


def mean_pairwise_distance(vectors: np.ndarray, sample: int = 2000, seed: int = 0) -> float | None:
    """Diversity: mean cosine distance over pairs of (up to `sample`) unit vectors."""
    n = len(vectors)
    if n < 2:
        return None
    if n > sample:
        vectors = vectors[np.random.default_rng(seed).choice(n, sample, replace=False)]
        n = sample
    sims = vectors @ vectors.T
    mean_sim = (sims.sum() - np.trace(sims)) / (n * (n - 1))
    return round(float(1.0 - mean_sim), 4)
