"""Validation of what callers pass in and of what is on disk, with messages that name the fix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sketchsearch.data.safe_paths import UnsafePathError, check_relative_path
from sketchsearch.gallery.commit import MANIFEST_FILE
from sketchsearch.gallery.errors import GalleryCorruptError, GalleryError
from sketchsearch.gallery.hnsw_file import IndexFacts
from sketchsearch.gallery.items import GalleryItem, ItemStore
from sketchsearch.gallery.manifest import GalleryManifest, ModelRef
from sketchsearch.gallery.scores import SPACES, UNIT_NORM_SPACES


def check_new_gallery(
    folder: Path,
    dim: int,
    space: str,
    model: ModelRef,
    M: int,
    ef_construction: int,
    ef: int,
) -> None:
    if (folder / MANIFEST_FILE).exists():
        raise GalleryError(f"{folder}: a gallery already exists here; open it instead")
    if space not in SPACES:
        raise GalleryError(f"space {space!r}: use one of {', '.join(SPACES)}")
    if dim < 1 or M < 2 or ef_construction < 1 or ef < 1:
        raise GalleryError(
            f"dim={dim}, M={M}, ef_construction={ef_construction}, ef={ef}: "
            "all must be positive, and M at least 2"
        )
    if model.dim != dim:
        raise GalleryError(
            f"the model makes {model.dim}-dimensional vectors, the gallery holds {dim}"
        )


def check_paths(items: Sequence[GalleryItem]) -> None:
    """Paths to add: each relative to the gallery root and normalised, and none twice."""
    seen: set[str] = set()
    for item in items:
        try:
            check_relative_path(item.path, "gallery root")
        except UnsafePathError as err:
            raise GalleryError(f"cannot add: {err}") from None
        if item.path in seen:
            raise GalleryError(f"{item.path}: appears twice in one add")
        seen.add(item.path)


def check_files(files: dict[str, Path], manifest: GalleryManifest) -> None:
    if set(manifest.files) != set(files):
        raise GalleryCorruptError(
            f"{next(iter(files.values())).parent}: the manifest lists {sorted(manifest.files)}, "
            f"a gallery has {sorted(files)}"
        )
    for name, record in manifest.files.items():
        path = files[name]
        if not path.exists():
            raise GalleryCorruptError(f"{path}: missing (the manifest lists it)")
        actual = path.stat().st_size
        if actual != record.size:
            raise GalleryCorruptError(
                f"{path}: {actual} bytes, the manifest says {record.size}: the file was changed "
                "or truncated outside sketchsearch"
            )


def check_store(
    items: Path, manifest: GalleryManifest, store: ItemStore, facts: IndexFacts
) -> None:
    """The metadata must describe exactly the index's elements, from the same generation."""
    live, deleted = store.counts()
    generation = store.generation()
    if (live, deleted, generation) != (manifest.live, manifest.deleted, manifest.generation):
        raise GalleryCorruptError(
            f"{items}: holds {live} live and {deleted} deleted items of generation "
            f"{generation}; the manifest says {manifest.live}, {manifest.deleted}, generation "
            f"{manifest.generation}"
        )
    stored_ids, stored_deleted = store.ids_and_deleted()
    order = np.argsort(facts.labels, kind="stable")
    if not (
        np.array_equal(facts.labels[order].astype(np.int64), stored_ids)
        and np.array_equal(facts.deleted[order], stored_deleted)
    ):
        raise GalleryCorruptError(
            f"{items}: its item ids or delete marks differ from the index's: the two files "
            "come from different saves"
        )


def check_stored_paths(items: Path, store: ItemStore) -> None:
    """Every stored path relative to the gallery root and normalised, checked when the gallery
    opens: an edited database can never make retrieval read a file outside the root.

    SQL picks the few rows that could be unsafe (``maybe_unsafe_paths``, a superset) and
    Python checks those: about 10x faster than checking 100k paths one by one in Python.
    """
    for path in store.maybe_unsafe_paths():
        try:
            check_relative_path(path, "gallery root")
        except UnsafePathError as err:
            raise GalleryCorruptError(
                f"{items}: {err}; the item database was changed outside sketchsearch: rebuild "
                "the gallery with `sketchsearch gallery build`"
            ) from None


def check_vectors(
    vectors: np.ndarray, manifest: GalleryManifest, where: Path | str, stored: bool
) -> np.ndarray:
    """A C-contiguous float32 [n, dim] array.

    Stored vectors in the ip and l2 spaces must already be unit length (their scores are only
    cosines then); queries are normalised here, so a query's scale never changes its scores.
    """
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    if matrix.ndim != 2 or matrix.shape[1] != manifest.dim:
        raise GalleryError(
            f"{where}: vectors of shape {tuple(np.shape(vectors))}, this gallery "
            f"holds {manifest.dim}-dimensional vectors"
        )
    if not np.isfinite(matrix).all():
        raise GalleryError(f"{where}: vectors contain NaN or infinity")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if (norms < 1e-12).any():
        raise GalleryError(f"{where}: a zero vector has no direction")
    if not stored:
        return np.ascontiguousarray(matrix / norms)
    if manifest.space in UNIT_NORM_SPACES and np.abs(norms - 1).max(initial=0) > 1e-3:
        raise GalleryError(
            f"{where}: the {manifest.space} space needs unit-length vectors "
            "(L2-normalise them first)"
        )
    return np.ascontiguousarray(matrix)
