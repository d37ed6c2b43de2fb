"""The one place that knows how an hnswlib distance becomes a similarity score.

hnswlib returns distances (lower is closer): cosine = 1 − cos, ip = 1 − dot, l2 = squared
Euclidean. The gallery reports cosine similarities (higher is closer). For ``ip`` and ``l2``
that holds because the gallery only accepts unit-length vectors in those spaces.
"""

from __future__ import annotations

import numpy as np

SPACES = ("cosine", "ip", "l2")
UNIT_NORM_SPACES = ("ip", "l2")


def distance_to_score(space: str, distances: np.ndarray) -> np.ndarray:
    values = np.asarray(distances, dtype=np.float32)
    if space in ("cosine", "ip"):
        return np.asarray(1.0 - values, dtype=np.float32)
    if space == "l2":  # |a − b|² = 2 − 2·cos for unit vectors
        return np.asarray(1.0 - values / 2.0, dtype=np.float32)
    raise ValueError(f"unknown space {space!r}")


def exact_scores(queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Cosine similarity of every query with every vector, for brute-force fallbacks."""
    q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    v = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return np.asarray(q @ v.T, dtype=np.float32)
