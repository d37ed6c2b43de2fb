"""A gallery in a Qdrant collection: the second kind of ``GalleryStore`` (ADR 0008).

The collection holds one point per item (``qdrant_points``) and one reserved point, whose
payload is the ``GalleryManifest`` JSON the folder gallery writes: the same ``check_model``
binds it to a model family at open. A writer writes its points tagged with the next
generation, invisible to readers, and commits by updating the manifest point last (one point,
one atomic write); a writer that dies leaves points that the next writer deletes. Removed
items carry the generation that removed them and are deleted once that generation is
committed. One writer: local mode's folder lock, and a lease on the manifest point for a server
(``qdrant_lease``), taken before the writer reads the manifest it will build on.

The store is built in layers: ``qdrant_reads`` holds its state and reads, ``qdrant_commit``
its changes and the commit, and this module opening, attaching and closing it.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from sketchsearch.gallery.errors import GalleryError
from sketchsearch.gallery.manifest import (
    GALLERY_FORMAT,
    GALLERY_FORMAT_VERSION,
    GalleryManifest,
    GallerySource,
    ModelRef,
    now,
)
from sketchsearch.gallery.qdrant_collection import MANIFEST_ID, make_collection, read_manifest_point
from sketchsearch.gallery.qdrant_commit import QdrantWriter
from sketchsearch.gallery.qdrant_lease import Lease
from sketchsearch.gallery.qdrant_points import connect
from sketchsearch.gallery.qdrant_ref import QdrantRef, parse_ref
from sketchsearch.gallery.store import check_model

DEFAULT_M, DEFAULT_EF_CONSTRUCTION, DEFAULT_EF = 16, 200, 64


class QdrantStore(QdrantWriter):
    """A gallery in one Qdrant collection; open it with ``open_gallery("qdrant…")``."""

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
