"""The default parameters find the true neighbours on clustered data (hnswlib's BFIndex oracle)."""

from __future__ import annotations

from pathlib import Path

import hnswlib
import numpy as np
from vectors import clustered, items, model

from sketchsearch.gallery import Gallery


def test_recall_at_10_against_exact_search(tmp_path: Path) -> None:
    dim, n = 64, 5000
    vectors = clustered(n, dim, centres=50, seed=11)
    rng = np.random.default_rng(12)
    queries = vectors[rng.integers(0, n, 200)] + 0.05 * rng.normal(size=(200, dim))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    exact = hnswlib.BFIndex(space="cosine", dim=dim)
    exact.init_index(n)
    exact.add_items(vectors, np.arange(n))
    _, true_distances = exact.knn_query(queries, k=10)
    with Gallery.create(tmp_path / "g", dim, model=model(dim=dim)) as gallery:
        gallery.add(vectors, items(n))
    with Gallery.open(tmp_path / "g") as reader:
        results = reader.search(queries, k=10)
    found = np.array([r.scores for r in results])
    # Compare distances, not ids: ties reorder. A hit is a found score as good as the 10th true one.
    tenth_best = 1 - true_distances[:, -1:]
    recall = float(np.mean(found >= tenth_best - 1e-5))
    assert recall >= 0.99
