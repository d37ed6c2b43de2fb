"""Training images decoded once into a memory-mapped uint8 array, reused across epochs.

Small real data sets are decode-bound on a few CPU cores: every epoch re-reads and re-decodes
the same PNGs and JPEGs. The cache decodes each training image once, at the training size
(the central square, resized with area interpolation), into one ``[N, S, S, 3]`` uint8 file;
epochs then read rows from the page cache. The augmentations still run on every access, so
the samples a model sees keep changing.

The file's name is a digest of the image list (paths, sizes, modification times) and the
size, so an edited data set or another size gets a new file, never a stale one. It is written
under a temporary name and renamed when complete, so a killed run leaves no half-filled cache
that a later run would trust.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from sketchsearch.data.errors import UsageError
from sketchsearch.data.imagefile import read_image

CACHE_VERSION = 1


def square(image: np.ndarray, size: int) -> np.ndarray:
    """The central square of ``image``, resized to ``size`` × ``size``."""
    import cv2

    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = image[top : top + side, left : left + side]
    if side == size:
        return np.ascontiguousarray(crop)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(crop, (size, size), interpolation=interpolation)


class DecodedImages:
    """Row ``i`` holds ``paths[i]`` decoded; build once with :meth:`build`, then index."""

    def __init__(self, file: Path, paths: Sequence[str], size: int) -> None:
        self.file, self.size = file, size
        self.rows = {path: row for row, path in enumerate(paths)}
        self._array: np.ndarray | None = None  # opened lazily: loader workers open their own

    @classmethod
    def build(
        cls, root: Path, paths: Sequence[str], size: int, cache_dir: Path, workers: int = 4
    ) -> DecodedImages:
        """Open the cache for these images at ``size``, decoding them first when needed."""
        unique = sorted(set(paths))
        file = cache_dir / f"decoded-{size}px-{_digest(root, unique, size)}.u8"
        cache = cls(file, unique, size)
        if file.is_file() and file.stat().st_size == cache.nbytes:
            return cache
        cache_dir.mkdir(parents=True, exist_ok=True)
        descriptor, scratch = tempfile.mkstemp(prefix=f".{file.name}.", dir=cache_dir)
        os.close(descriptor)
        try:
            array = np.memmap(scratch, np.uint8, "w+", shape=cache.shape)

            def fill(row: int, target: np.ndarray = array) -> None:
                target[row] = square(read_image(root / unique[row]), size)

            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(fill, range(len(unique))))  # list(): re-raise the first error
            array.flush()
            del array
            os.replace(scratch, file)
        except BaseException:
            Path(scratch).unlink(missing_ok=True)
            raise
        return cache

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.rows), self.size, self.size, 3)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape))

    def image(self, path: str) -> np.ndarray:
        """A private copy of one decoded image (augmentations may write to it)."""
        row = self.rows.get(path)
        if row is None:
            raise UsageError(f"{path}: not in the decoded-image cache {self.file}")
        if self._array is None:
            self._array = np.memmap(self.file, np.uint8, "r", shape=self.shape)
        return np.array(self._array[row])

    def __getstate__(self) -> dict[str, object]:
        """Loader workers get the path, not an open map."""
        return {**self.__dict__, "_array": None}


def _digest(root: Path, paths: Sequence[str], size: int) -> str:
    digest = hashlib.sha256(f"{CACHE_VERSION}\0{size}\0{root.resolve()}\0".encode())
    for path in paths:
        stat = (root / path).stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]
