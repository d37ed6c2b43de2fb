"""Persistent galleries: an HNSW index, SQLite metadata and a manifest binding them to a model.

Torch-free and engine-free: numpy, hnswlib and sqlite3 only.
"""

from sketchsearch.gallery.gallery import Gallery
from sketchsearch.gallery.items import GalleryItem, ItemRow
from sketchsearch.gallery.manifest import GalleryManifest, ModelRef
from sketchsearch.gallery.results import (
    AddReport,
    ExportedVectors,
    GalleryInfo,
    RemoveReport,
    SearchResult,
)

__all__ = [
    "AddReport",
    "ExportedVectors",
    "Gallery",
    "GalleryInfo",
    "GalleryItem",
    "GalleryManifest",
    "ItemRow",
    "ModelRef",
    "RemoveReport",
    "SearchResult",
]
