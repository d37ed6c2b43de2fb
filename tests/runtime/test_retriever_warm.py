"""A retriever warms its gallery when it opens, so that no query's timings include it.

Observed through SQLite's trace callback on the gallery's item database: the warm-up's item
lookup runs in the constructor, and each query then runs only its own.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from colour_engine import ColourEngine

from sketchsearch.gallery import GalleryItem, create_gallery, open_gallery
from sketchsearch.gallery.store import WARM_K
from sketchsearch.runtime.rerank import RerankConfig
from sketchsearch.runtime.retriever import Retriever, model_ref

ITEM_LOOKUP = "FROM items WHERE id IN ("
COLOURS = 40


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A gallery of ``COLOURS`` seeded colours, embedded as the colour engine does."""
    engine = ColourEngine()
    rng = np.random.default_rng(3)
    vectors = rng.uniform(0.05, 1.0, (COLOURS, 3)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    items = [GalleryItem(f"c/{i}.png", f"sha-{i}", "c") for i in range(COLOURS)]
    with create_gallery(tmp_path / "g", 3, model=model_ref(engine.card)) as gallery:
        gallery.add(vectors, items)
    return tmp_path / "g"


def lookup_sizes(statements: list[str]) -> list[int]:
    return [s.split(ITEM_LOOKUP, 1)[1].count(",") + 1 for s in statements if ITEM_LOOKUP in s]


@pytest.mark.parametrize(
    ("reranking", "warmed"),
    [(None, WARM_K), (RerankConfig(method="aqe", shortlist=25), 25)],
)
def test_the_retriever_warms_at_open_and_queries_run_only_their_own_lookup(
    folder: Path, tmp_path: Path, reranking: RerankConfig | None, warmed: int
) -> None:
    query = tmp_path / "q.png"
    cv2.imwrite(str(query), np.full((8, 8, 3), (20, 200, 60), np.uint8))
    statements: list[str] = []
    with open_gallery(folder) as gallery:
        gallery._store.connection.set_trace_callback(statements.append)  # type: ignore[attr-defined]
        retriever = Retriever(ColourEngine(), gallery, reranking=reranking)
        assert lookup_sizes(statements) == [warmed]  # at open, before any query
        (answer,) = retriever.search_files([query], k=WARM_K)
    assert answer.error is None and len(answer.matches) == WARM_K
    assert lookup_sizes(statements) == [warmed, warmed]  # the query's own: the same text
