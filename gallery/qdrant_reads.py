"""The reading half of a Qdrant gallery store: its state, and searches, look-ups and export.

``QdrantReader`` holds what a ``QdrantStore`` knows (client, manifest, next id, lease) and
answers every read at the generation the store sees (``_view``): the committed one, and a
writer's own uncommitted changes too. Apart from the changes and the commit
(``qdrant_commit``) and from opening and closing (``qdrant_store``): one job per module.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from sketchsearch.gallery.change_guard import ChangeGuard
from sketchsearch.gallery.checks import check_vectors
from sketchsearch.gallery.errors import GalleryError
from sketchsearch.gallery.items import ItemRow
from sketchsearch.gallery.manifest import GalleryManifest
from sketchsearch.gallery.qdrant_collection import MANIFEST_ID, read_manifest_point
from sketchsearch.gallery.qdrant_lease import Lease
from sketchsearch.gallery.qdrant_points import (
    ADDED,
    REMOVED,
    item_row,
    labelled,
    local_mode_quiet,
    scroll_all,
    visible,
    written_by,
)
from sketchsearch.gallery.qdrant_ref import QdrantRef
from sketchsearch.gallery.results import ExportedVectors, GalleryInfo, SearchResult
from sketchsearch.gallery.store import WARM_K, version_of, warm_vectors


class QdrantReader:
    """The state of a ``QdrantStore`` and its reads; the base of ``QdrantWriter``."""

    def __init__(self, ref: QdrantRef, client: Any, manifest: GalleryManifest, **state: Any):
        self._where: QdrantRef = ref
        self._client = client
        self.manifest: GalleryManifest = manifest
        self.notes: list[str] = []
        self._lease: Lease | None = state.get("lease")
        self._writer: bool = state.get("writer", False)
        self._next_id: int = state.get("next_id", 0)
        self._instance: str = state.get("instance", "")
        self._has_point: bool = state.get("has_point", True)
        self._owns_client: bool = state.get("owns_client", True)
        # Ids below this one are committed items (or were): ``put_rows`` never overwrites them.
        self._committed_next_id = self._next_id
        # Local mode pages in one go: it re-sorts every id and re-filters for each page.
        self._page: int | None = None if ref.local else 1000
        # A local-mode reader whose collection holds nothing uncommitted searches unfiltered:
        # local mode evaluates a filter in Python on every point (10x slower), and nothing can
        # change while it holds the storage folder.
        self._plain = False
        self._dirty = False
        self._guard = ChangeGuard(  # a change failed half-way: no commit until reopened
            ref.text,
            "close the gallery (that discards the uncommitted changes) and make them again",
        )

    @property
    def ref(self) -> str:
        return self._where.text

    @property
    def collection(self) -> str:
        return self._where.collection

    # ------------------------------------------------------------------ reading
    def search(
        self,
        vectors: np.ndarray,
        k: int,
        ef: int | None = None,
        filter: str | Sequence[str] | None = None,
        threads: int = 1,
    ) -> list[SearchResult]:
        """The ``k`` best live items per query (cosine); ``filter`` keeps these labels.

        ``ef`` is Qdrant's ``hnsw_ef`` (default: the manifest's ``ef``); ``threads`` is the
        server's business. Local mode searches exhaustively and ignores ``hnsw_ef``.
        """
        from qdrant_client import models

        queries = self._check_vectors(vectors, stored=False)
        if k < 1:
            raise GalleryError(f"k={k}: ask for at least one result")
        labels = [filter] if isinstance(filter, str) else filter
        if labels is not None and not list(labels):  # no label allowed: nothing, as a folder
            return [_result([]) for _ in queries]
        if self._plain:  # only the manifest point to leave out: one more, then drop it
            where = None if labels is None else labelled(list(labels))
            limit = k + 1 if labels is None else k
        else:
            where = visible(self._view, None if labels is None else list(labels))
            limit = k
        params = models.SearchParams(hnsw_ef=ef or self.manifest.ef)
        requests = [
            models.QueryRequest(
                query=q, filter=where, limit=limit, params=params, with_payload=True
            )
            for q in queries.tolist()
        ]
        with local_mode_quiet():
            answers = self._client.query_batch_points(self.collection, requests)
        return [
            _result([p for p in answer.points if str(p.id) != MANIFEST_ID][:k])
            for answer in answers
        ]

    def warm(self, k: int = WARM_K) -> int:
        if self.manifest.live == 0 and not self._dirty:
            return 0
        return len(self.search(warm_vectors(1, self.manifest.dim), k)[0].ids)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        wanted = [int(i) for i in np.asarray(ids, dtype=np.int64).ravel()]
        found = (
            {}
            if min(wanted, default=0) < 0
            else {
                int(p.id): p.vector
                for p in self._client.retrieve(self.collection, wanted, with_vectors=True)
                if self._is_visible(p.payload)
            }
        )
        missing = [i for i in wanted if i not in found]
        if missing:
            raise GalleryError(f"{self.ref}: no live items with ids {missing[:10]}")
        return np.array([found[i] for i in wanted], dtype=np.float32).reshape(-1, self.manifest.dim)

    def items(self, ids: Sequence[int]) -> dict[int, ItemRow]:
        wanted = [int(i) for i in ids if int(i) >= 0]  # item ids are never negative
        if not wanted:
            return {}
        points = self._client.retrieve(self.collection, wanted, with_payload=True)
        return {int(p.id): item_row(p.id, p.payload) for p in points if self._is_visible(p.payload)}

    def committed_version(self) -> str:
        """``version_of`` the committed manifest, as the service compares it with its loaded
        one: a collection pushed again under the same name starts at generation 0, but with
        another creation time (to the microsecond)."""
        return version_of(read_manifest_point(self._client, self._where).manifest)

    def digests(self, paths: Iterable[str]) -> dict[str, str]:
        return {path: row.sha256 for path, row in self._live_by_path(paths).items()}

    def labels(self) -> frozenset[str]:
        """Qdrant's facet count over the visible items' labels (no item is read)."""
        total = max(1, self._client.count(self.collection, exact=True).count)
        facets = self._client.facet(
            self.collection, "label", facet_filter=visible(self._view), limit=total, exact=True
        )
        return frozenset(str(hit.value) for hit in facets.hits)

    def info(self) -> GalleryInfo:
        m = self.manifest
        # What this store's generation holds: another writer's pending points are not "deleted".
        total = self._client.count(self.collection, count_filter=written_by(self._view)).count
        live = self._client.count(self.collection, count_filter=visible(self._view), exact=True)
        return GalleryInfo(
            self.ref, m.model.describe(), m.model.family, m.dim, m.space, m.M,
            m.ef_construction, m.ef, live.count, total - live.count, total, m.generation,
            m.root, m.created_at, m.updated_at, {}, self._dirty, m.threshold, m.source,
        )  # fmt: skip

    def export_vectors(self) -> ExportedVectors:
        points = sorted(
            scroll_all(
                self._client, self.collection, visible(self._view), vectors=True, page=self._page
            ),
            key=lambda p: int(p.id),
        )
        ids = np.array([int(p.id) for p in points], dtype=np.int64)
        vectors = np.array([p.vector for p in points], dtype=np.float32).reshape(
            -1, self.manifest.dim
        )
        rows = [item_row(p.id, p.payload) for p in points]
        return ExportedVectors(ids, vectors, rows, self.manifest, next_id=self._next_id)

    # ------------------------------------------------------------------ internals
    @property
    def _view(self) -> int:
        """The generation this store sees: the committed one, and a writer its own changes."""
        return self.manifest.generation + int(self._writer)

    def _is_visible(self, payload: dict[str, Any] | None) -> bool:
        raw = payload or {}
        added, gone = raw.get(ADDED), raw.get(REMOVED)
        return (
            isinstance(added, int) and added <= self._view and (gone is None or gone > self._view)
        )

    def _live_by_path(self, paths: Iterable[str]) -> dict[str, ItemRow]:
        wanted, found = list(paths), {}
        for start in range(0, len(wanted), 1000):
            where = visible(self._view, path=wanted[start : start + 1000])
            for point in scroll_all(self._client, self.collection, where, page=self._page):
                row = item_row(point.id, point.payload)
                found[row.path] = row
        return found

    def _check_vectors(self, vectors: np.ndarray, stored: bool) -> np.ndarray:
        return check_vectors(vectors, self.manifest, self.ref, stored)

    def _nothing_pending(self) -> bool:
        """Every item point is visible: no uncommitted addition, no removal mark."""
        points = self._client.count(self.collection, exact=True).count - 1  # the manifest's
        live = self._client.count(self.collection, count_filter=visible(self._view), exact=True)
        return bool(live.count == points)


def _result(points: list[Any]) -> SearchResult:
    rows = [item_row(p.id, p.payload) for p in points]
    ids = np.array([row.id for row in rows], dtype=np.int64)
    return SearchResult(ids, np.array([p.score for p in points], dtype=np.float32), rows)
