"""A result's image, by item id only: a thumbnail, a larger view, or the original file.

No request names a path. The item's stored path is joined to the gallery's recorded root
and must stay inside it with every symlink followed (a gallery built from a folder that
later gained a symlink out of it serves nothing through that link). Files are checked as
any image is (regular file, size limit, signature; pixels before decoding), so a huge or
hostile file in the gallery folder cannot exhaust the service. Scaled images are cached by
content and size, a bounded number of them.

Identity is the item's stored SHA-256: it makes the ETag (a revalidation is answered 304
without reading the file), and a URL's ``v`` (its first 16 hex digits) pins the content, so
an id that names another image after the gallery was rebuilt answers 404 instead of a wrong
picture, and a versioned URL can be cached as immutable.
"""

from __future__ import annotations

import os
import stat
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sketchsearch.data.errors import ImageDecodeError
from sketchsearch.data.imagefile import DEFAULT_MAX_PIXELS, decode_image, read_bytes, sniff_format
from sketchsearch.data.regular_file import max_file_bytes
from sketchsearch.runtime.pipeline import points_outside
from sketchsearch.runtime.retriever import Retriever
from sketchsearch.runtime.service.errors import ApiError

SIDES = {"thumbnail": 256, "large": 1024}  # the longest side of each scaled size, in pixels
SCALED_CACHE = 256  # scaled images kept (a thumbnail is about 15 KB, a large one 150 KB)
JPEG_QUALITY = 85
VERSION_CHARS = 16  # the SHA-256 hex digits a URL's ``v`` carries
MEDIA_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WebP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}


@dataclass(frozen=True)
class LocatedItem:
    item_id: int
    file: Path
    sha256: str

    @property
    def version(self) -> str:
        return self.sha256[:VERSION_CHARS]

    def etag(self, size: str) -> str:
        return f'"{self.sha256[:32]}-{size}"'


def image_url(item_id: int, sha256: str | None) -> str:
    """The URL a search answer gives for an item's image (versioned when the hash is known)."""
    base = f"/v1/items/{item_id}/image"
    return f"{base}?v={sha256[:VERSION_CHARS]}" if sha256 else base


class ItemImages:
    def __init__(self, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self._max_pixels = max_pixels
        self._scaled: OrderedDict[tuple[str, str, int, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def locate(self, retriever: Retriever, item_id: int, version: str | None) -> LocatedItem:
        gallery = retriever.gallery
        row = gallery.items([item_id]).get(item_id)
        if row is None:
            raise ApiError(404, f"item {item_id}: not in the gallery")
        if version is not None and not row.sha256.startswith(version.lower()):
            raise ApiError(
                404, f"item {item_id}: that image is no longer in the gallery; search again"
            )
        root = gallery.manifest.root
        if not root:
            raise ApiError(404, f"item {item_id}: the gallery records no image folder")
        resolved_root = Path(root).resolve()
        file = resolved_root / row.path
        if points_outside(file, resolved_root):
            raise ApiError(404, f"item {item_id}: its file is outside the gallery's image folder")
        return LocatedItem(item_id, file, row.sha256)

    def original(self, item: LocatedItem) -> str:
        """The original's media type, after the checks any image file gets (the file is then
        streamed, never held in memory)."""
        try:
            info = os.stat(item.file)
        except FileNotFoundError:
            raise ApiError(404, f"item {item.item_id}: file not found") from None
        except OSError as err:
            raise ApiError(
                500, f"item {item.item_id}: cannot read: {err.strerror}", "item_unreadable"
            ) from None
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_file_bytes():
            raise ApiError(
                500,
                f"item {item.item_id}: not a regular image file within the size limit",
                "item_unreadable",
            )
        with open(item.file, "rb") as handle:
            fmt = sniff_format(handle.read(64))
        if fmt is None:
            raise ApiError(500, f"item {item.item_id}: not an image file", "item_unreadable")
        return MEDIA_TYPES.get(fmt, "application/octet-stream")

    def scaled(self, item: LocatedItem, size: str) -> bytes:
        """A JPEG whose longest side is at most ``SIDES[size]``.

        Cached by the stored hash and the file's size and modification time: a file replaced
        on disk before `gallery add` re-indexes it is scaled again, not served from the cache
        (its ETag still names the stored hash, which is what the gallery searched)."""
        try:
            info = os.stat(item.file)
        except OSError:
            info = None
        key = (item.sha256, size, info.st_size if info else -1, info.st_mtime_ns if info else -1)
        with self._lock:
            cached = self._scaled.get(key)
            if cached is not None:
                self._scaled.move_to_end(key)
                return cached
        body = self._encode(item, SIDES[size])
        with self._lock:
            self._scaled[key] = body
            while len(self._scaled) > SCALED_CACHE:
                self._scaled.popitem(last=False)
        return body

    def _encode(self, item: LocatedItem, side: int) -> bytes:
        try:
            image = decode_image(read_bytes(item.file), f"item {item.item_id}", self._max_pixels)
        except ImageDecodeError as err:  # named by id: the server's paths stay private
            status = 404 if err.problem == "file not found" else 500
            raise ApiError(
                status,
                f"item {item.item_id}: {err.problem}",
                "" if status == 404 else "item_unreadable",
            ) from None
        height, width = image.shape[:2]
        scale = side / max(height, width)
        if scale < 1:
            shape = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = cv2.resize(image, shape, interpolation=cv2.INTER_AREA)
        bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
        ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise ApiError(
                500, f"item {item.item_id}: the image could not be encoded", "item_unreadable"
            )
        return encoded.tobytes()
