"""Seeded vector data for gallery tests: clustered unit vectors, like real embeddings."""

from __future__ import annotations

import numpy as np

from sketchsearch.gallery import GalleryItem, ModelRef


def clustered(
    n: int, dim: int, centres: int = 20, spread: float = 0.35, seed: int = 0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centres, dim))
    points = means[rng.integers(0, centres, n)] + spread * rng.normal(size=(n, dim))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points.astype(np.float32)


def items(n: int, start: int = 0, labels: int = 5, tag: str = "") -> list[GalleryItem]:
    return [
        GalleryItem(
            f"photos/{i:05d}.jpg", f"sha-{i}{tag}", label=f"c{i % labels}", instance=f"i{i}"
        )
        for i in range(start, start + n)
    ]


def model(family: str = "family-a", precision: str = "fp32", dim: int = 16) -> ModelRef:
    return ModelRef(family=family, name="resnet10t", dim=dim, precision=precision)


def exact_top(queries: np.ndarray, vectors: np.ndarray, ids: np.ndarray, k: int):
    """Brute-force oracle: ids and cosine scores, best first."""
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    v = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = q @ v.T
    order = np.argsort(-scores, axis=1)[:, :k]
    return ids[order], np.take_along_axis(scores, order, axis=1)
