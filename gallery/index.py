"""The vector index: hnswlib, with the checks and fallbacks a dependable gallery needs.

hnswlib's own behaviour that this wraps: it forgets ``ef`` on load, raises "Cannot return the
results in a contiguous 2D array" when fewer than ``k`` items are reachable, and trusts its file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import hnswlib
import numpy as np

from sketchsearch.gallery.errors import GalleryCorruptError, GalleryWriteError
from sketchsearch.gallery.hnsw_file import IndexFacts, check_index_file
from sketchsearch.gallery.scores import distance_to_score, exact_scores

INITIAL_CAPACITY = 1024
GROWTH = 1.5
SEED = 100


class VectorIndex:
    def __init__(self, index: hnswlib.Index, space: str, default_ef: int) -> None:
        self.raw = index
        self.space = space
        self.default_ef = default_ef

    @classmethod
    def new(
        cls, space: str, dim: int, M: int, ef_construction: int, ef: int, capacity: int = 0
    ) -> VectorIndex:
        index = hnswlib.Index(space=space, dim=dim)
        index.init_index(
            max(INITIAL_CAPACITY, capacity),
            ef_construction=ef_construction,
            M=M,
            random_seed=SEED,
        )
        return cls(index, space, ef)

    @classmethod
    def load(
        cls, path: Path, *, space: str, dim: int, M: int, ef: int, count: int
    ) -> tuple[VectorIndex, IndexFacts]:
        """Load after checking the file, so a bad file is an error rather than a crash.

        The capacity comes from the element count, never from the file or the manifest, so
        a damaged size field cannot make hnswlib allocate absurd amounts of memory.
        """
        facts = check_index_file(path, dim=dim, count=count, m=M)
        index = hnswlib.Index(space=space, dim=dim)
        index.load_index(str(path), max_elements=max(count, INITIAL_CAPACITY))
        return cls(index, space, ef), facts

    def save(self, path: Path) -> None:
        """Save, then check the file: on a full disk hnswlib can write a short file and not
        raise (it does not check its stream), which the commit must not record."""
        try:
            self.raw.save_index(str(path))
        except RuntimeError as err:  # hnswlib: "Cannot open file"
            raise GalleryWriteError(f"{path.name} could not be written ({err})") from None
        try:
            check_index_file(path, dim=self.raw.dim, count=self.raw.element_count, m=self.raw.M)
        except GalleryCorruptError as err:
            size = path.stat().st_size
            raise GalleryWriteError(
                f"{path.name} was written short ({size} bytes: {str(err).rsplit(': ', 1)[-1]}): "
                "free some space and run the command again"
            ) from None

    @property
    def capacity(self) -> int:
        return int(self.raw.get_max_elements())

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        needed = self.raw.element_count + len(ids)
        if needed > self.capacity:
            self.raw.resize_index(max(needed, int(self.capacity * GROWTH)))
        self.raw.add_items(vectors, ids)

    def mark_deleted(self, ids: list[int]) -> None:
        for item_id in ids:
            self.raw.mark_deleted(int(item_id))

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        if len(ids) == 0:
            return np.zeros((0, self.raw.dim), np.float32)
        return np.asarray(self.raw.get_items(ids, return_type="numpy"), dtype=np.float32)

    def rebuilt(self, live: np.ndarray, M: int, ef_construction: int) -> VectorIndex:
        """A fresh index holding only ``live``, with the same ids."""
        fresh = VectorIndex.new(
            self.space, self.raw.dim, M, ef_construction, self.default_ef, len(live)
        )
        if len(live):
            fresh.raw.add_items(self.vectors(live), live)
        return fresh

    def search(
        self,
        queries: np.ndarray,
        k: int,
        ef: int | None,
        allowed: np.ndarray | None,
        threads: int,
        all_live: Callable[[], np.ndarray],
    ) -> tuple[np.ndarray, np.ndarray]:
        """ids and scores [queries, k], restricted to ``allowed`` ids when given.

        ``k`` must not exceed the number of live (allowed) items. ef is at least ``k`` and the
        default. When hnswlib cannot return ``k`` items (a sparse filter, many deletions), the
        search falls back to exact scoring of ``allowed``, or of ``all_live()``.
        """
        self.raw.set_ef(max(ef or self.default_ef, self.default_ef, k))
        allowed_set = set(allowed.tolist()) if allowed is not None else None
        try:
            if allowed_set is None:
                labels, distances = self.raw.knn_query(queries, k=k, num_threads=threads)
            else:  # a Python filter runs under the GIL: one thread is fastest
                labels, distances = self.raw.knn_query(
                    queries, k=k, num_threads=1, filter=lambda label: label in allowed_set
                )
        except RuntimeError:
            return self.exact_search(queries, allowed if allowed is not None else all_live(), k)
        return labels.astype(np.int64), distance_to_score(self.space, distances)

    def exact_search(
        self, queries: np.ndarray, candidates: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        scores = exact_scores(queries, self.vectors(candidates))
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return candidates[order], np.take_along_axis(scores, order, axis=1)
