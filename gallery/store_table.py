"""Open or create a gallery store from its reference, through one table of store kinds.

A folder path is the hnswlib + SQLite ``Gallery``; ``kind://…`` names another kind in
``STORE_KINDS``. A new backend is one module and one entry here, its import inside its
functions so that no store loads another's client (ADR 0005).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from sketchsearch.data.errors import UsageError
from sketchsearch.gallery.manifest import GallerySource, ModelRef
from sketchsearch.gallery.store import GalleryStore

# (reference, expected model or None, mode "r"/"rw", writer lock timeout in seconds)
OpenStore = Callable[[str, ModelRef | None, str, float], GalleryStore]
# (reference, dim, space, model, root folder of the item paths or None, what the images are)
CreateStore = Callable[[str, int, str, ModelRef, str | None, GallerySource | None], GalleryStore]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class StoreKind:
    """One kind of gallery store: the scheme naming it, and how to open and create one."""

    scheme: str  # "" for a folder path: the reference has no "kind://"
    example: str  # shown when a reference names no known kind
    open: OpenStore
    create: CreateStore


def _open_folder(
    ref: str, expected_model: ModelRef | None, mode: str, lock_timeout: float
) -> GalleryStore:
    from sketchsearch.gallery.gallery import Gallery

    return Gallery.open(ref, expected_model, mode, lock_timeout=lock_timeout)


def _create_folder(
    ref: str,
    dim: int,
    space: str,
    model: ModelRef,
    root: str | None,
    source: GallerySource | None,
) -> GalleryStore:
    from sketchsearch.gallery.gallery import Gallery

    return Gallery.create(ref, dim, space, model=model, root=root, source=source)


def _open_qdrant(
    ref: str, expected_model: ModelRef | None, mode: str, lock_timeout: float
) -> GalleryStore:
    from sketchsearch.gallery.qdrant_store import QdrantStore

    return QdrantStore.open(ref, expected_model, mode, lock_timeout)


def _create_qdrant(
    ref: str,
    dim: int,
    space: str,
    model: ModelRef,
    root: str | None,
    source: GallerySource | None,
) -> GalleryStore:
    from sketchsearch.gallery.errors import GalleryError
    from sketchsearch.gallery.qdrant_store import QdrantStore

    if space != "cosine":
        raise GalleryError(f"{ref}: space {space!r}; a Qdrant gallery holds cosine only")
    return QdrantStore.create(ref, dim, model, root, source)


# Scheme strings stay literal here (not imported): this table must not load a store's module.
STORE_KINDS: tuple[StoreKind, ...] = (
    StoreKind("", "a folder path (hnswlib + SQLite)", _open_folder, _create_folder),
    StoreKind(
        "qdrant", "qdrant://localhost:6333/photos: a Qdrant server", _open_qdrant, _create_qdrant
    ),
    StoreKind(
        "qdrants",
        "qdrants://db.example:6333/photos: a Qdrant server over HTTPS",
        _open_qdrant,
        _create_qdrant,
    ),
    StoreKind(
        "qdrant+local",
        "qdrant+local://qdrant-data?collection=photos: Qdrant's local mode, one process",
        _open_qdrant,
        _create_qdrant,
    ),
)


def find_store_kind(ref: str | os.PathLike[str]) -> tuple[StoreKind, str]:
    """The kind of store ``ref`` names, and ``ref`` as a string; a path object is a folder."""
    text = os.fspath(ref)
    match = _SCHEME.match(text) if isinstance(ref, str) else None
    scheme = match.group(1).lower() if match else ""
    for kind in STORE_KINDS:
        if kind.scheme == scheme:
            return kind, text
    known = "; ".join(
        f"{kind.scheme}://… ({kind.example})" if kind.scheme else kind.example
        for kind in STORE_KINDS
    )
    raise UsageError(f"gallery {text!r}: unknown store kind {scheme!r}; use {known}")


def open_gallery(
    ref: str | os.PathLike[str],
    expected_model: ModelRef | None = None,
    mode: str = "r",
    *,
    lock_timeout: float = 30.0,
) -> GalleryStore:
    """Open the store ``ref`` names; with ``expected_model``, refuse another model family."""
    kind, text = find_store_kind(ref)
    return kind.open(text, expected_model, mode, lock_timeout)


def create_gallery(
    ref: str | os.PathLike[str],
    dim: int,
    space: str = "cosine",
    *,
    model: ModelRef,
    root: str | None = None,
    source: GallerySource | None = None,
) -> GalleryStore:
    """Make an empty store bound to ``model``, committed, and return it open for writing.

    ``source`` records what the images are (a split's part and domain, or a folder), which
    evaluation checks before it trusts the gallery.
    """
    kind, text = find_store_kind(ref)
    return kind.create(text, dim, space, model, root, source)
