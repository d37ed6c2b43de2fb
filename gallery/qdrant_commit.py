"""The writing half of a Qdrant gallery store: changes for the next generation, the commit.

``QdrantWriter`` writes points tagged with the next generation and marks removed ones, all
invisible to readers, then commits by counting what that generation holds and updating the
manifest point last (the protocol is in ``qdrant_store``'s docstring); ``_discard`` deletes
what an uncommitted generation left. Apart from the reads it builds on (``qdrant_reads``) and
from opening and closing (``qdrant_store``): one job per module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, replace

import numpy as np

from sketchsearch.gallery.checks import check_paths
from sketchsearch.gallery.commit import crash_point
from sketchsearch.gallery.errors import GalleryCorruptError, GalleryError
from sketchsearch.gallery.items import GalleryItem, ItemRow
from sketchsearch.gallery.manifest import GallerySource, MatchThreshold, now
from sketchsearch.gallery.qdrant_collection import ManifestPoint, write_manifest_point
from sketchsearch.gallery.qdrant_lease import Lease
from sketchsearch.gallery.qdrant_points import REMOVED, item_payload, pending, removed_by, visible
from sketchsearch.gallery.qdrant_reads import QdrantReader
from sketchsearch.gallery.results import AddReport, RemoveReport

UPSERT_BATCH = 512


class QdrantWriter(QdrantReader):
    """The changes and the commit of a ``QdrantStore``; the base of ``QdrantStore``."""

    def commit(self) -> None:
        """Count what the next generation holds, then update the manifest point: the commit."""
        self._require_writer()
        self._guard.refuse_if_broken("not committed: ")
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
        self.manifest = self.manifest.after_removing(len(unique))
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

    # ------------------------------------------------------------------ internals
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

    def _renew_lease(self) -> None:
        if self._lease is not None and self._has_point:
            self._lease.renew_if_due()

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """A change that fails half-way (some points written, some not) blocks the commit."""
        self._require_writer()
        with self._guard.changing():
            yield

    def _require_writer(self) -> None:
        if not self._writer:
            raise GalleryError(f"{self.ref}: opened read-only; open with mode='rw' to change it")


def _item_fields(item: GalleryItem) -> tuple[str, str | None, str | None, str]:
    return item.path, item.label, item.instance, item.sha256
