"""What gallery operations return."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sketchsearch.gallery.items import ItemRow
from sketchsearch.gallery.manifest import GalleryManifest, GallerySource, MatchThreshold


@dataclass(frozen=True)
class SearchResult:
    """One query's matches, best first: scores are cosine similarities."""

    ids: np.ndarray
    scores: np.ndarray
    items: list[ItemRow]


@dataclass(frozen=True)
class AddReport:
    added: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)  # new ids of items whose content changed
    skipped: list[str] = field(default_factory=list)  # paths already present, same content


@dataclass(frozen=True)
class RemoveReport:
    removed: list[int]
    not_found: list[str]


@dataclass(frozen=True)
class GalleryInfo:
    directory: str
    model: str
    model_family: str
    dim: int
    space: str
    M: int
    ef_construction: int
    ef: int
    live: int
    deleted: int
    max_elements: int
    generation: int
    root: str | None
    created_at: str
    updated_at: str
    file_bytes: dict[str, int]
    uncommitted_changes: bool
    threshold: MatchThreshold | None = None  # the recommended "no match" score, if measured
    source: GallerySource | None = None  # what the images are; None: not recorded


@dataclass(frozen=True)
class ExportedVectors:
    """Everything a vector database needs to re-load the gallery without re-embedding."""

    ids: np.ndarray
    vectors: np.ndarray
    items: list[ItemRow]
    manifest: GalleryManifest
    # The next id the gallery gives out: past every id it ever used, deleted items' included
    # (None: unknown; a copy then uses max(ids) + 1).
    next_id: int | None = None
