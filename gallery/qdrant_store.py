"""A gallery in a Qdrant collection: the second kind of ``GalleryStore`` (ADR 0008).

The collection holds one point per item (``qdrant_points``) and one reserved point, whose
payload is the ``GalleryManifest`` JSON the folder gallery writes: the same ``check_model``
binds it to a model family at open. A writer writes its points tagged with the next
generation, invisible to readers, and commits by updating the manifest point last (one point,
one atomic write); a writer that dies leaves points that the next writer deletes. Removed
items carry the generation that removed them and are deleted once that generation is
committed. One writer: local mode's folder lock, and a lease on the manifest point for a server
(``qdrant_lease``), taken before the writer reads the manifest it will build on.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import numpy as np

from sketchsearch.gallery.checks import check_paths, check_vectors
from sketchsearch.gallery.commit import crash_point
from sketchsearch.gallery.errors import (
    GalleryCorruptError,
    GalleryError,
)
from sketchsearch.gallery.items import GalleryItem, ItemRow
from sketchsearch.gallery.manifest import (
    GALLERY_FORMAT,
    GALLERY_FORMAT_VERSION,
    GalleryManifest,
    GallerySource,
    MatchThreshold,
    ModelRef,
    now,
)
from sketchsearch.gallery.qdrant_collection import (
    MANIFEST_ID,
    ManifestPoint,
    make_collection,
    read_manifest_point,
    write_manifest_point,
)
from sketchsearch.gallery.qdrant_lease import Lease
from sketchsearch.gallery.qdrant_points import (
    ADDED,
    REMOVED,
    connect,
    item_payload,
    item_row,
    labelled,
    local_mode_quiet,
    pending,
    removed_by,
    scroll_all,
    visible,
    written_by,
)
from sketchsearch.gallery.qdrant_ref import QdrantRef, parse_ref
from sketchsearch.gallery.results import (
    AddReport,
    ExportedVectors,
    GalleryInfo,
    RemoveReport,
    SearchResult,
)
from sketchsearch.gallery.store import WARM_K, check_model, version_of, warm_vectors

DEFAULT_M, DEFAULT_EF_CONSTRUCTION, DEFAULT_EF = 16, 200, 64
UPSERT_BATCH = 512


class QdrantStore:
    """A gallery in one Qdrant collection; open it with ``open_gallery("qdrant…")``."""

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
        self._broken = False  # a change failed half-way: no commit until reopened

    @property
    def ref(self) -> str:
        return self._where.text

    @property
    def collection(self) -> str:
        return self._where.collection

    # ----------------------------------------------------------------- lifecycle
    @classmethod
    def create(
        cls,
        text: str,
        dim: int,
        model: ModelRef,
        root: str | None = None,
        source: GallerySource | None = None,
        *,
        commit: bool = True,
        hnsw: tuple[int, int, int] = (DEFAULT_M, DEFAULT_EF_CONSTRUCTION, DEFAULT_EF),
    ) -> QdrantStore:
        """An empty collection bound to ``model``, open for writing; committed (generation 0)
        unless ``commit`` is False: then nothing marks it a gallery until the first commit,
        so a push that fails half-way leaves a collection no one can open as one."""
        ref = parse_ref(text)
        if model.dim != dim:
            raise GalleryError(f"the model makes {model.dim}-d vectors, the gallery holds {dim}")
        client = connect(ref, create=True)
        try:
            store = cls._new(ref, client, dim, model, root, source, hnsw)
            if commit:
                store.commit()
        except BaseException:
            client.close()
            raise
        return store

    @classmethod
    def _new(
        cls, ref: QdrantRef, client: Any, dim: int, model: ModelRef, *rest: Any
    ) -> QdrantStore:
        root, source, (m, ef_construction, ef) = rest
        make_collection(client, ref, dim, m, ef_construction)
        # To the microsecond: ``version_of`` tells a collection made again under the same name
        # (generation 0 again) from the old one by its creation time alone.
        created = datetime.now(UTC).isoformat(timespec="microseconds")
        manifest = GalleryManifest(
            GALLERY_FORMAT, GALLERY_FORMAT_VERSION, -1, model, dim, "cosine", m,
            ef_construction, ef, 0, 0, 0, root, created, now(), {}, source=source,
        )  # fmt: skip
        lease = Lease.take(client, ref, MANIFEST_ID, 0.0, exists=False)
        store = cls(ref, client, manifest, lease=lease, writer=True, instance=uuid.uuid4().hex)
        store._has_point, store._dirty = False, True
        return store

    @classmethod
    def open(
        cls, text: str, expected: ModelRef | None, mode: str, lock_timeout: float
    ) -> QdrantStore:
        if mode not in ("r", "rw"):
            raise GalleryError(f"mode {mode!r}: use 'r' or 'rw'")
        ref = parse_ref(text)
        return cls.attach(ref, connect(ref, create=False), expected, mode, lock_timeout)

    @classmethod
    def attach(
        cls,
        ref: QdrantRef,
        client: Any,
        expected: ModelRef | None,
        mode: str,
        lock_timeout: float,
        *,
        enforce_lease: bool | None = None,
        owns_client: bool = True,
    ) -> QdrantStore:
        """The store on ``client`` (closed on failure and at ``close`` if ``owns_client``).

        A writer takes the lease first and only then reads the manifest it builds on: one
        read before the wait would miss a commit made during it, and the discard below would
        delete that commit's points. ``enforce_lease`` (tests) takes it in local mode too.
        """
        lease = None
        try:
            read_manifest_point(client, ref)  # a gallery at all, before waiting for it
            if mode == "rw":
                lease = Lease.take(client, ref, MANIFEST_ID, lock_timeout, enforce=enforce_lease)
            point = read_manifest_point(client, ref)
            note = (
                None if expected is None else check_model(ref.text, point.manifest.model, expected)
            )
            store = cls(
                ref, client, point.manifest, lease=lease, writer=mode == "rw",
                next_id=point.next_id, instance=point.instance, owns_client=owns_client,
            )  # fmt: skip
            if mode == "rw":
                store._discard()  # what a writer killed before its commit left behind
            else:
                store._plain = ref.local and store._nothing_pending()
        except BaseException:
            # not a lease-long wait for the next writer; the first error is the one to report
            with contextlib.suppress(Exception):
                if lease is not None:
                    lease.release()
            if owns_client:
                client.close()
            raise
        if note is not None:
            store.notes.append(note)
        return store

    def commit(self) -> None:
        """Count what the next generation holds, then update the manifest point: the commit."""
        self._require_writer()
        if self._broken:
            raise GalleryError(
                f"{self.ref}: not committed: an earlier change failed half-way; close the "
                "gallery (that discards the uncommitted changes) and make them again"
            )
        if not self._dirty:
            return
        if self._lease is not None and self._has_point:
            self._lease.check()  # lapsed and taken by another writer: do not commit over it
        following = self.manifest.generation + 1
        live = self._client.count(self.collection, count_filter=visible(following), exact=True)
        total = self._client.count(self.collection, exact=True).count - int(self._has_point)
        manifest = self.manifest.committed(live=live.count, deleted=0, max_elements=total)
        crash_point("qdrant-points-written")
        point = ManifestPoint(manifest, self._next_id, self._instance)
        write_manifest_point(self._client, self._where, point, **Lease.payload_of(self._lease))
        self._has_point = True
        self.manifest, self._dirty = manifest, False
        self._committed_next_id = self._next_id
        crash_point("qdrant-manifest-written")
        self._client.delete(self.collection, removed_by(manifest.generation), wait=True)

    def close(self) -> None:
        """Discard uncommitted changes of a writer, hand its lease back, close the client."""
        try:
            if self._writer and self._dirty and self._has_point:
                self._discard()
            if self._lease is not None:
                self._lease.release()
                self._lease = None
        finally:
            self._writer = False
            if self._owns_client:
                self._client.close()

    def __enter__(self) -> QdrantStore:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        """Commit on a clean exit from a writable store; discard changes after an error."""
        try:
            if kind is None and self._writer:
                self.commit()
        finally:
            self.close()

    # ------------------------------------------------------------------ changes
    def add(self, vectors: np.ndarray, items: Sequence[GalleryItem]) -> AddReport:
        """Add new items; skip those present with the same content; replace changed ones."""
        matrix = self._check_vectors(vectors, stored=True)
        if len(items) != len(matrix):
            raise GalleryError(f"{len(matrix)} vectors but {len(items)} items")
        check_paths(items)
        with self._changing():
            return self._add(matrix, items)

    def _add(self, matrix: np.ndarray, items: Sequence[GalleryItem]) -> AddReport:
        present = self._live_by_path(item.path for item in items)
        fresh, changed, skipped = [], [], []
        for position, item in enumerate(items):
            old = present.get(item.path)
            if old is None:
                fresh.append(position)
            elif old.sha256 == item.sha256:
                skipped.append(item.path)
            else:
                changed.append(position)
        keep = sorted(fresh + changed)
        new_id = {position: self._next_id + n for n, position in enumerate(keep)}
        self._mark_removed([present[items[p].path].id for p in changed])
        stamp = now()
        rows = [ItemRow(new_id[p], *_item_fields(items[p]), stamp, False) for p in keep]
        self.put_rows(matrix[keep], rows)
        return AddReport(
            added=[new_id[p] for p in fresh],
            updated=[new_id[p] for p in changed],
            skipped=skipped,
        )

    def put_rows(self, vectors: np.ndarray, rows: Sequence[ItemRow]) -> None:
        """Write items with their own ids and ``added_at`` (a push keeps both), invisible to
        readers until the commit; ids at or past the next free id move it on. Ids below the
        committed next id are refused: those points are committed items (or were)."""
        from qdrant_client import models

        taken = [row.id for row in rows if row.id < self._committed_next_id]
        if taken:
            raise GalleryError(
                f"{self.ref}: ids {taken[:10]} are below the next free id "
                f"{self._committed_next_id}: put_rows writes new items only"
            )
        with self._changing():
            following = self.manifest.generation + 1
            for start in range(0, len(rows), UPSERT_BATCH):
                chunk = rows[start : start + UPSERT_BATCH]
                vectors_of = vectors[start : start + UPSERT_BATCH].tolist()
                points = [
                    models.PointStruct(
                        id=row.id, vector=vector, payload=item_payload(row, following)
                    )
                    for row, vector in zip(chunk, vectors_of, strict=True)
                ]
                self._renew_lease()
                self._dirty = True  # before the write: a failed one may have half-landed
                self._client.upsert(self.collection, points, wait=True)
                self._next_id = max(self._next_id, max(row.id for row in chunk) + 1)

    def reserve_ids(self, next_id: int) -> None:
        """Never give out ids below ``next_id``: a push carries its source's next id, so ids
        of items the source deleted are not used again (the folder gallery never reuses one)."""
        self._require_writer()
        if next_id > self._next_id:
            self._next_id, self._dirty = next_id, True

    def remove(self, ids: Iterable[int] = (), paths: Iterable[str] = ()) -> RemoveReport:
        with self._changing():
            return self._remove(ids, paths)

    def _remove(self, ids: Iterable[int], paths: Iterable[str]) -> RemoveReport:
        wanted_ids = [int(i) for i in ids]
        rows = self.items(wanted_ids)
        live_ids = [i for i in wanted_ids if i in rows]
        missing = [str(i) for i in wanted_ids if i not in rows]
        path_list = list(paths)
        by_path = self._live_by_path(path_list)
        live_ids += [by_path[p].id for p in path_list if p in by_path]
        missing += [p for p in path_list if p not in by_path]
        unique = sorted(set(live_ids))
        self._mark_removed(unique)
        origin = self.manifest.source
        if unique and origin is not None and origin.kind != "folder" and not origin.partial:
            # evaluation must not present a subset of a split's part as the whole part
            self.manifest = replace(self.manifest, source=replace(origin, partial=True))
        return RemoveReport(removed=unique, not_found=missing)

    def set_threshold(self, threshold: MatchThreshold | None) -> None:
        self._require_writer()
        if threshold is not None:
            try:  # the same checks as on reading, so that what is saved can be opened again
                MatchThreshold.from_dict(asdict(threshold), "threshold")
            except GalleryCorruptError as err:
                raise GalleryError(str(err)) from None
        self.manifest, self._dirty = replace(self.manifest, threshold=threshold), True

    def set_source(self, source: GallerySource | None) -> None:
        self._require_writer()
        self.manifest, self._dirty = replace(self.manifest, source=source), True

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

    def _mark_removed(self, ids: Sequence[int]) -> None:
        if ids:
            following = self.manifest.generation + 1
            self._renew_lease()
            self._dirty = True
            self._client.set_payload(
                self.collection, {REMOVED: following}, points=list(ids), wait=True
            )

    def _discard(self) -> None:
        """Delete the points of uncommitted generations and clear their removal marks."""
        added, marked = pending(self.manifest.generation)
        self._client.delete(self.collection, added, wait=True)
        self._client.delete_payload(self.collection, [REMOVED], points=marked, wait=True)
        self._client.delete(self.collection, removed_by(self.manifest.generation), wait=True)
        self._dirty = False

    def _check_vectors(self, vectors: np.ndarray, stored: bool) -> np.ndarray:
        return check_vectors(vectors, self.manifest, self.ref, stored)

    def _nothing_pending(self) -> bool:
        """Every item point is visible: no uncommitted addition, no removal mark."""
        points = self._client.count(self.collection, exact=True).count - 1  # the manifest's
        live = self._client.count(self.collection, count_filter=visible(self._view), exact=True)
        return bool(live.count == points)

    def _renew_lease(self) -> None:
        if self._lease is not None and self._has_point:
            self._lease.renew_if_due()

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """A change that fails half-way (some points written, some not) blocks the commit."""
        self._require_writer()
        if self._broken:
            raise GalleryError(
                f"{self.ref}: an earlier change failed half-way; close the gallery (that "
                "discards the uncommitted changes) and make them again"
            )
        try:
            yield
        except BaseException:
            self._broken = True
            raise

    def _require_writer(self) -> None:
        if not self._writer:
            raise GalleryError(f"{self.ref}: opened read-only; open with mode='rw' to change it")


def _item_fields(item: GalleryItem) -> tuple[str, str | None, str | None, str]:
    return item.path, item.label, item.instance, item.sha256


def _result(points: list[Any]) -> SearchResult:
    rows = [item_row(p.id, p.payload) for p in points]
    ids = np.array([row.id for row in rows], dtype=np.int64)
    return SearchResult(ids, np.array([p.score for p in points], dtype=np.float32), rows)
