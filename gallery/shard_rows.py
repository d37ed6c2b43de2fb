"""Which shard rows an import adds: duplicates skipped, one path with two contents refused.

Separate from the import loop because deciding row by row (against the gallery and the rows
already read) is its own job, and the memory bound of the paths read lives here.

Duplicates follow ``gallery add``: a row whose path is already in the gallery with the same
content is skipped and counted. The same content under two paths is two items, as
``gallery build`` makes of two identical files. The same path with two contents among the
shards means the collection changed between runs: which is right cannot be known, so the
import is refused and names the shard, into a new gallery and an existing one alike. Into an
existing gallery (``into``), a path the gallery holds with other content (and the shards with
one) is replaced, as ``gallery add`` replaces a changed file. The paths already read are
remembered as 64-bit hashes of path and content (16 bytes a row), not as strings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import numpy as np

from sketchsearch.gallery.errors import GalleryMismatchError
from sketchsearch.gallery.items import GalleryItem
from sketchsearch.gallery.shard_file import ShardRow
from sketchsearch.gallery.store import GalleryStore


class ReadPaths:
    """The (path, content) pairs read so far, as sorted 64-bit hashes: a path met again with
    other content is refused, whether in the same batch or a later shard."""

    def __init__(self) -> None:
        self.paths = np.zeros(0, np.uint64)
        self.contents = np.zeros(0, np.uint64)

    def check_and_add(self, path: Path, rows: Sequence[ShardRow]) -> None:
        paths = np.array([_hash64(row.path) for row in rows], np.uint64)
        contents = np.array([int(row.sha256[:16], 16) for row in rows], np.uint64)
        at = np.minimum(np.searchsorted(self.paths, paths), max(len(self.paths) - 1, 0))
        if len(self.paths):
            clash = (self.paths[at] == paths) & (self.contents[at] != contents)
            if clash.any():
                _conflict(path, rows[int(np.flatnonzero(clash)[0])])
        merged_paths = np.concatenate([self.paths, paths])
        merged_contents = np.concatenate([self.contents, contents])
        order = np.argsort(merged_paths, kind="stable")
        self.paths, self.contents = merged_paths[order], merged_contents[order]


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _conflict(path: Path, row: ShardRow) -> NoReturn:
    raise GalleryMismatchError(
        f"{path}: {row.path} has other content than in an earlier row of the shards: the "
        "collection changed between the runs that made these shards; embed it again "
        "into a new folder, or remove the stale shards"
    )


def new_rows(
    gallery: GalleryStore, path: Path, rows: Sequence[ShardRow], creating: bool
) -> tuple[list[int], int]:
    """The positions of ``rows`` to add, and how many are duplicates to skip."""
    present = gallery.digests(row.path for row in rows)
    seen: dict[str, str] = {}
    keep: list[int] = []
    duplicates = 0
    for position, row in enumerate(rows):
        known = seen.get(row.path)
        if known is None:
            known = present.get(row.path)
            if known != row.sha256 and not creating:
                known = None  # absent, or a changed file: added or replaced as `gallery add` does
        if known is None:
            keep.append(position)
            seen[row.path] = row.sha256
        elif known == row.sha256:
            duplicates += 1
        else:
            _conflict(path, row)
    return keep, duplicates


def unit(vectors: np.ndarray) -> np.ndarray:
    """float16 vectors, widened, back to unit length (as the engine made them)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: np.ndarray = vectors / np.maximum(norms, np.float32(1e-12))
    return unit


def item(row: ShardRow) -> GalleryItem:
    return GalleryItem(path=row.path, sha256=row.sha256, label=row.label, instance=row.instance)
