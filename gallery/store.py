"""The gallery store protocol: what retrieval, evaluation and benchmarks need of a gallery.

The hnswlib + SQLite ``Gallery`` is one store; a vector database can be another (ADR 0005).
Stores are opened through ``store_table.open_gallery``, never constructed by their users.
Every store keeps the guarantees ADR 0005 lists: model binding (``check_model``), all-or-
nothing commits, one writer at a time, recall measured against brute force, and each item's
id, path, label, instance and content hash returned as they were added.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

import numpy as np

from sketchsearch.gallery.errors import GalleryMismatchError
from sketchsearch.gallery.items import GalleryItem, ItemRow
from sketchsearch.gallery.manifest import GalleryManifest, GallerySource, MatchThreshold, ModelRef
from sketchsearch.gallery.results import (
    AddReport,
    ExportedVectors,
    GalleryInfo,
    RemoveReport,
    SearchResult,
)

WARM_K = 10  # results per warm-up search: `retrieve`'s default -k


@runtime_checkable
class GalleryStore(Protocol):
    """A gallery of unit vectors bound to one model family, searched by cosine similarity.

    Changes (``add``, ``remove``, ``set_threshold``) reach storage at ``commit``, all or
    nothing; leaving a writable store's ``with`` block cleanly commits, an error discards.
    """

    @property
    def ref(self) -> str:
        """Where the store lives, as ``open_gallery`` accepts it (a folder, ``kind://…``)."""
        ...

    @property
    def manifest(self) -> GalleryManifest:
        """The last committed record: model, dim, space, root, counts, threshold."""
        ...

    def search(
        self,
        vectors: np.ndarray,
        k: int,
        ef: int | None = None,
        filter: str | Sequence[str] | None = None,
        threads: int = 1,
    ) -> list[SearchResult]:
        """The ``k`` best live items per query, best first; ``filter`` keeps these labels."""
        ...

    def warm(self, k: int = WARM_K) -> int:
        """Search once for a throw-away vector, so that the first real search is as fast as
        later ones (index pages, prepared statements); the number of items it found."""
        ...

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of live ``ids``, in their order (re-ranking reads these)."""
        ...

    def items(self, ids: Sequence[int]) -> dict[int, ItemRow]:
        """The live items among ``ids`` (a service serves a result's image by its id alone)."""
        ...

    def committed_version(self) -> str:
        """:func:`version_of` the newest state committed in storage, which may differ from
        this open store's ``manifest``: a long-running reader (the service) polls it to
        reload after a commit, or after the gallery was rebuilt in place."""
        ...

    def add(self, vectors: np.ndarray, items: Sequence[GalleryItem]) -> AddReport:
        """Add new items; skip those present with the same content; replace changed ones."""
        ...

    def remove(self, ids: Iterable[int] = (), paths: Iterable[str] = ()) -> RemoveReport: ...

    def digests(self, paths: Iterable[str]) -> dict[str, str]:
        """The SHA-256 of each live item among ``paths``: lets callers skip re-embedding."""
        ...

    def labels(self) -> frozenset[str]:
        """The labels of live items (a result grid tells a miss from an unknown category)."""
        ...

    def set_threshold(self, threshold: MatchThreshold | None) -> None: ...

    def set_source(self, source: GallerySource | None) -> None:
        """Record what the images are: a split's part and domain, a folder, or a mix."""
        ...

    def info(self) -> GalleryInfo: ...

    def export_vectors(self) -> ExportedVectors:
        """Every live item's id, vector and metadata, with the manifest: a move is a re-load."""
        ...

    def commit(self) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None: ...


def check_model(where: str, built: ModelRef, expected: ModelRef) -> str | None:
    """The model binding every store keeps: refuse another family or dimension.

    Returns a note when only the precision differs (same weights: comparable vectors).
    """
    if expected.family != built.family or expected.dim != built.dim:
        raise GalleryMismatchError(
            f"{where}: gallery was built with model {built.describe()}, you are "
            f"querying with model {expected.describe()}: rebuild the gallery with "
            "`sketchsearch gallery build` for this model"
        )
    if expected.precision != built.precision:
        return (
            f"gallery built at {built.precision}, queried at {expected.precision}: "
            "same weights, vectors are comparable"
        )
    return None


def version_of(manifest: GalleryManifest) -> str:
    """A token that changes with every commit and every rebuild: the generation alone does
    not, since a gallery rebuilt in place starts again at generation 1 (its creation time has
    a one-second resolution, so the data files' digests are part of it too)."""
    digests = ",".join(
        f"{name}={record.size}:{record.sha256 or ''}"
        for name, record in sorted(manifest.files.items())
    )
    return f"{manifest.generation}@{manifest.created_at}/{digests}"


def warm_vectors(count: int, dim: int) -> np.ndarray:
    """``count`` fixed unit vectors in no special direction, for warm-up searches: not from
    numpy.random, which a fresh process would import just for this (11 ms)."""
    vectors = np.cos(np.arange(count * dim, dtype=np.float64) * 0.7 + 0.3).reshape(count, dim)
    return np.asarray(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), np.float32)
