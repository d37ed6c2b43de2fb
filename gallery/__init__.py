"""Persistent galleries behind one protocol (``GalleryStore``, opened with ``open_gallery``).

The folder kind: an HNSW index, SQLite metadata and a manifest binding them to a model.

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
from sketchsearch.gallery.store import GalleryStore
from sketchsearch.gallery.store_table import create_gallery, open_gallery

__all__ = [
    "AddReport",
    "ExportedVectors",
    "Gallery",
    "GalleryInfo",
    "GalleryItem",
    "GalleryManifest",
    "GalleryStore",
    "ItemRow",
    "ModelRef",
    "RemoveReport",
    "SearchResult",
    "create_gallery",
    "open_gallery",
]
