"""hnswlib distances become cosine similarities, checked on vectors placed by hand."""

from __future__ import annotations

import hnswlib
import numpy as np
import pytest

from sketchsearch.gallery.scores import distance_to_score

# Unit vectors at 0°, 60° and 90° from the query: cosines 1, 0.5 and 0.
VECTORS = np.array([[1, 0], [0.5, np.sqrt(3) / 2], [0, 1]], dtype=np.float32)
QUERY = np.array([[1, 0]], dtype=np.float32)


@pytest.mark.parametrize(
    ("space", "distances"),
    [("cosine", [0.0, 0.5, 1.0]), ("ip", [0.0, 0.5, 1.0]), ("l2", [0.0, 1.0, 2.0])],
)
def test_distances_become_cosines(space: str, distances: list[float]) -> None:
    index = hnswlib.Index(space=space, dim=2)
    index.init_index(10)
    index.add_items(VECTORS, np.arange(3))
    labels, found = index.knn_query(QUERY, k=3)
    assert labels.tolist() == [[0, 1, 2]]
    assert np.allclose(found, [distances], atol=1e-6)  # documents hnswlib's conventions
    assert np.allclose(distance_to_score(space, found), [[1.0, 0.5, 0.0]], atol=1e-6)
