"""Solutions to lesson 05's exercises, computed the way the lesson does."""

from __future__ import annotations

import numpy as np


def pair_cosine(embed, a: str = "The dog bit the man.", b: str = "The man bit the dog.") -> float:
    """Exercise 1: embed both texts in one call; the vectors have length 1, so the cosine is their dot product
    (divided by the lengths anyway, for a model whose vectors are not normalized)."""
    u, v = embed([a, b])
    return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))


def mrr(ranking, relevant) -> float:
    """Exercise 2: for each query, 1 / (position of its first relevant document, from 1), averaged."""
    reciprocal = []
    for row, wanted in zip(ranking, relevant):
        position = next((i for i, doc in enumerate(row, start=1) if doc in wanted), None)
        reciprocal.append(0.0 if position is None else 1 / position)
    return float(np.mean(reciprocal))


def fewest_dimensions(truncation, within: float = 0.05) -> int:
    """Exercise 3: the smallest index of section 7's table whose MRR is within `within` of the full vector's."""
    full = truncation["MRR"].loc[truncation.index.max()]
    return int(min(d for d in truncation.index if truncation["MRR"].loc[d] >= full - within))


def storage_gb(n_vectors: int = 1_000_000, dims: tuple[int, ...] = (384, 96)) -> tuple[float, ...]:
    """Exercise 4: vectors x dimensions x 4 bytes (float32), in GB of 1e9 bytes."""
    return tuple(n_vectors * d * np.dtype(np.float32).itemsize / 1e9 for d in dims)
