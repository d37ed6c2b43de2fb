"""A gallery: an hnswlib index, its item metadata and a manifest, kept consistent on disk.

Changes (``add``, ``remove``, ``compact``, ``set_threshold``) happen in memory and reach the
disk at ``commit``, which is crash-safe (``commit.py``). One process writes at a time; any
number read the last committed state. Inside a process, a lock keeps searches and changes
from overlapping, because hnswlib is not safe for queries running during inserts.

It is the folder kind of ``GalleryStore`` (``store.py``); users open it with ``open_gallery``.
Item paths are relative to the gallery root and normalised (``data/safe_paths.py``): ``add``
refuses any other, and opening refuses a gallery whose item database holds one.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from types import TracebackType

import numpy as np

from sketchsearch.gallery.change_guard import ChangeGuard
from sketchsearch.gallery.checks import (
    check_files,
    check_new_gallery,
    check_paths,
    check_store,
    check_stored_paths,
    check_vectors,
)
from sketchsearch.gallery.commit import (
    DATA_FILES,
    INDEX_FILE,
    ITEMS_FILE,
    MANIFEST_FILE,
    committed_view,
    pending_manifest,
    recover,
    verify_files,
    write_generation,
)
from sketchsearch.gallery.errors import (
    GalleryCorruptError,
    GalleryError,
    GalleryMismatchError,
    GalleryNotFoundError,
)
from sketchsearch.gallery.index import INITIAL_CAPACITY, VectorIndex
from sketchsearch.gallery.items import GalleryItem, ItemRow, ItemStore
from sketchsearch.gallery.locking import COMMIT_LOCK, WRITER_LOCK, FileLock
from sketchsearch.gallery.manifest import (
    GALLERY_FORMAT,
    GALLERY_FORMAT_VERSION,
    GalleryManifest,
    GallerySource,
    MatchThreshold,
    ModelRef,
    now,
)
from sketchsearch.gallery.results import (
    AddReport,
    ExportedVectors,
    GalleryInfo,
    RemoveReport,
    SearchResult,
)
from sketchsearch.gallery.store import WARM_K, check_model, version_of, warm_vectors

DEFAULT_M = 16
DEFAULT_EF_CONSTRUCTION = 200
DEFAULT_EF = 64
EXACT_SEARCH_LIMIT = 2048  # filtered searches over at most this many items are exact


class Gallery:
    def __init__(
        self,
        directory: Path,
        manifest: GalleryManifest,
        index: VectorIndex,
        store: ItemStore,
        writer: FileLock | None,
    ) -> None:
        self.directory = directory
        self.manifest = manifest
        self.notes: list[str] = []
        self._index = index
        self._store = store
        self._writer = writer
        self._lock = threading.Lock()
        self._dirty = False
        self._live = store.counts()[0]  # kept here: counting rows per search would be O(n)
        self._guard = ChangeGuard(
            str(directory), "reopen the gallery to discard the uncommitted changes"
        )

    @property
    def ref(self) -> str:
        """The folder, as ``open_gallery`` takes it (the ``GalleryStore`` protocol)."""
        return str(self.directory)

    # ----------------------------------------------------------------- lifecycle
    @classmethod
    def create(
        cls,
        directory: str | os.PathLike[str],
        dim: int,
        space: str = "cosine",
        *,
        model: ModelRef,
        M: int = DEFAULT_M,
        ef_construction: int = DEFAULT_EF_CONSTRUCTION,
        ef: int = DEFAULT_EF,
        root: str | None = None,
        source: GallerySource | None = None,
        capacity: int = INITIAL_CAPACITY,
    ) -> Gallery:
        """Make an empty gallery and commit it, then return it open for writing.

        ``capacity``: the items the index holds before it must grow (by copying): a caller
        that knows how many it will add (``gallery import``) saves the copies."""
        folder = Path(directory)
        check_new_gallery(folder, dim, space, model, M, ef_construction, ef)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / COMMIT_LOCK).touch()
        writer = FileLock(folder / WRITER_LOCK)
        writer.acquire(exclusive=True, timeout=0)
        try:
            check_new_gallery(folder, dim, space, model, M, ef_construction, ef)  # under the lock
            stamp = now()
            manifest = GalleryManifest(
                format=GALLERY_FORMAT,
                format_version=GALLERY_FORMAT_VERSION,
                generation=-1,
                model=model,
                dim=dim,
                space=space,
                M=M,
                ef_construction=ef_construction,
                ef=ef,
                live=0,
                deleted=0,
                max_elements=max(INITIAL_CAPACITY, capacity),
                root=root,
                created_at=stamp,
                updated_at=stamp,
                files={},
                source=source,
            )
            index = VectorIndex.new(space, dim, M, ef_construction, ef, capacity)
            gallery = cls(folder, manifest, index, ItemStore.new(), writer)
            gallery._dirty = True
            gallery.commit()
        except BaseException:
            writer.release()
            raise
        return gallery

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        expected_model: ModelRef | None = None,
        mode: str = "r",
        *,
        lock_timeout: float = 30.0,
    ) -> Gallery:
        if mode not in ("r", "rw"):
            raise GalleryError(f"mode {mode!r}: use 'r' or 'rw'")
        folder = Path(directory)
        if not (folder / MANIFEST_FILE).exists() and pending_manifest(folder) is None:
            raise GalleryNotFoundError(f"{folder}: not a gallery (no {MANIFEST_FILE})")
        writer = FileLock(folder / WRITER_LOCK) if mode == "rw" else None
        if writer is not None:
            writer.acquire(exclusive=True, timeout=lock_timeout)
        try:
            if writer is not None:
                recover(folder)
            gallery = cls._load(folder, mode, writer)
        except BaseException:
            if writer is not None:
                writer.release()
            raise
        if expected_model is not None:
            gallery._check_model(expected_model)
        return gallery

    @classmethod
    def _load(cls, folder: Path, mode: str, writer: FileLock | None) -> Gallery:
        with FileLock(folder / COMMIT_LOCK).held(exclusive=False):
            manifest_path, files = committed_view(folder)
            manifest = GalleryManifest.read(manifest_path)
            check_files(files, manifest)
            index, facts = VectorIndex.load(
                files[INDEX_FILE],
                space=manifest.space,
                dim=manifest.dim,
                M=manifest.M,
                ef=manifest.ef,
                count=manifest.live + manifest.deleted,
            )
            items = files[ITEMS_FILE]
            store = ItemStore.load_copy(items) if mode == "rw" else ItemStore.open_readonly(items)
            try:  # under the lock: a commit renaming files in would make the digests differ
                check_store(items, manifest, store, facts)
                check_stored_paths(items, store)
                # Digests last, after the checks that name the problem: a writer checks both
                # files, so it never carries damage into a new generation under a fresh digest;
                # a reader checks the small item database (a flipped byte there changes what a
                # result says) and leaves the index's vectors, ~85% of the bytes, to the
                # structural check above and to ``verify``.
                verify_files(files, manifest, DATA_FILES if mode == "rw" else (ITEMS_FILE,))
            except BaseException:
                store.close()
                raise
        return cls(folder, manifest, index, store, writer)

    def commit(self) -> None:
        """Save the changes made since the last commit (crash-safe); no-op when clean."""
        self._require_writer()
        with self._lock:
            self._guard.refuse_if_broken("not saved: ")
            if not self._dirty:
                return
            live, deleted = self._store.counts()
            next_manifest = self.manifest.committed(
                live=live, deleted=deleted, max_elements=self._index.capacity
            )
            self._store.set_generation(next_manifest.generation)
            self.manifest = write_generation(
                self.directory,
                next_manifest,
                self._index.save,
                self._store.save_to,
            )
            self._dirty = False

    def close(self) -> None:
        with self._lock:  # not under a search running in another thread
            self._store.close()
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> Gallery:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        """Commit on a clean exit from a writable gallery; discard changes after an error."""
        try:
            if kind is None and self._writer is not None:
                self.commit()
        finally:
            self.close()

    # ------------------------------------------------------------------ changes
    def add(self, vectors: np.ndarray, items: Sequence[GalleryItem]) -> AddReport:
        """Add new items; skip those present with the same content; replace changed ones."""
        matrix = self._check_vectors(vectors)
        if len(items) != len(matrix):
            raise GalleryError(f"{len(matrix)} vectors but {len(items)} items")
        check_paths(items)
        with self._changing():
            present = self._store.live_by_path(item.path for item in items)
            fresh, changed, skipped = [], [], []
            for position, item in enumerate(items):
                old = present.get(item.path)
                if old is None:
                    fresh.append(position)
                elif old[1] == item.sha256:
                    skipped.append(item.path)
                else:
                    changed.append(position)
            keep = sorted(fresh + changed)
            first = self._store.next_id()
            new_id = {position: first + n for n, position in enumerate(keep)}
            self._mark_deleted([present[items[p].path][0] for p in changed])
            if keep:
                ids = np.array([new_id[p] for p in keep], dtype=np.int64)
                self._index.add(matrix[keep], ids)
                self._store.insert(ids.tolist(), [items[p] for p in keep], now())
                self._live += len(keep)
                self._dirty = True
        return AddReport(
            added=[new_id[p] for p in fresh],
            updated=[new_id[p] for p in changed],
            skipped=skipped,
        )

    def remove(self, ids: Iterable[int] = (), paths: Iterable[str] = ()) -> RemoveReport:
        with self._changing():
            wanted_ids = [int(i) for i in ids]
            rows = self._store.rows(wanted_ids)
            live_ids = [i for i in wanted_ids if i in rows and not rows[i].deleted]
            missing = [str(i) for i in wanted_ids if i not in live_ids]
            path_list = list(paths)
            by_path = self._store.live_by_path(path_list)
            live_ids += [by_path[p][0] for p in path_list if p in by_path]
            missing += [p for p in path_list if p not in by_path]
            unique = sorted(set(live_ids))
            self._mark_deleted(unique)
            self.manifest = self.manifest.after_removing(len(unique))
        return RemoveReport(removed=unique, not_found=missing)

    def compact(self) -> int:
        """Rebuild the index without deleted items (ids are kept); returns how many went."""
        with self._changing():
            live = self._store.live_ids()
            gone = self._store.counts()[1]
            self._index = self._index.rebuilt(live, self.manifest.M, self.manifest.ef_construction)
            self._store.purge_deleted()
            self._dirty = True
        return gone

    def set_threshold(self, threshold: MatchThreshold | None) -> None:
        """Record the recommended match threshold (None clears it); the next commit saves it.

        It lives in the manifest, so it is written by the same crash-safe commit as any other
        change and a reader sees either the old threshold or the new one.
        """
        if threshold is not None:
            try:  # the same checks as on reading, so that what is saved can be opened again
                MatchThreshold.from_dict(asdict(threshold), "threshold")
            except GalleryCorruptError as err:
                raise GalleryError(str(err)) from None
        with self._changing():
            self.manifest = replace(self.manifest, threshold=threshold)
            self._dirty = True

    def set_source(self, source: GallerySource | None) -> None:
        """Record what the images are (``gallery add`` makes a split-built gallery mixed)."""
        with self._changing():
            self.manifest = replace(self.manifest, source=source)
            self._dirty = True

    # ------------------------------------------------------------------ reading
    def search(
        self,
        vectors: np.ndarray,
        k: int,
        ef: int | None = None,
        filter: str | Sequence[str] | None = None,
        threads: int = 1,
    ) -> list[SearchResult]:
        """The ``k`` best live items per query; ``filter`` keeps only items with these labels."""
        queries = self._check_vectors(vectors, stored=False)
        if k < 1:
            raise GalleryError(f"k={k}: ask for at least one result")
        labels = [filter] if isinstance(filter, str) else filter
        with self._lock:
            allowed = self._store.live_ids(list(labels)) if labels is not None else None
            available = len(allowed) if allowed is not None else self._live
            wanted = min(k, available)
            if wanted == 0:
                empty = SearchResult(np.zeros(0, np.int64), np.zeros(0, np.float32), [])
                return [empty for _ in queries]
            if allowed is not None and len(allowed) <= EXACT_SEARCH_LIMIT:
                ids, scores = self._index.exact_search(queries, allowed, wanted)
            else:
                ids, scores = self._index.search(
                    queries, wanted, ef, allowed, threads, self._store.live_ids
                )
            # A set, not np.unique: that imports numpy.ma on its first call (15-20 ms).
            rows = self._store.rows(sorted(set(ids.ravel().tolist())))
        return [
            SearchResult(i, s, [rows[int(x)] for x in i]) for i, s in zip(ids, scores, strict=True)
        ]

    def warm(self, k: int = WARM_K) -> int:
        """Run one search for a fixed unit vector, so that the first real search
        costs what later ones do; returns how many items it found.

        A search just after opening pays once for hnswlib's first query and SQLite preparing
        the item lookup (cached per connection by its text, which depends on the number of
        ids, hence ``k``): about 1 ms at 10k items, then 0.3-0.5 ms. The results are dropped.
        """
        if self._live == 0:
            return 0
        return len(self.search(warm_vectors(1, self.manifest.dim), k)[0].ids)

    def info(self) -> GalleryInfo:
        with self._lock:
            live, deleted = self._store.counts()
            capacity = self._index.capacity
        manifest = self.manifest
        return GalleryInfo(
            directory=str(self.directory),
            model=manifest.model.describe(),
            model_family=manifest.model.family,
            dim=manifest.dim,
            space=manifest.space,
            M=manifest.M,
            ef_construction=manifest.ef_construction,
            ef=manifest.ef,
            live=live,
            deleted=deleted,
            max_elements=capacity,
            generation=manifest.generation,
            root=manifest.root,
            created_at=manifest.created_at,
            updated_at=manifest.updated_at,
            file_bytes={n: (self.directory / n).stat().st_size for n in manifest.files},
            uncommitted_changes=self._dirty,
            threshold=manifest.threshold,
            source=manifest.source,
        )

    def verify(self) -> None:
        """Check the committed files against the SHA-256 digests their manifest recorded.

        Opening checks sizes, the index's structure and, for a reader, the item database's
        digest; this also reads the whole index (about 0.1 s per 120 MB).
        """
        with FileLock(self.directory / COMMIT_LOCK).held(exclusive=False):
            manifest_path, files = committed_view(self.directory)
            manifest = GalleryManifest.read(manifest_path)
            check_files(files, manifest)
            verify_files(files, manifest)

    def labels(self) -> frozenset[str]:
        """The labels of live items: tells a miss (a known category not found) from a query
        whose category the gallery does not hold."""
        with self._lock:
            return self._store.live_labels()

    def items(self, ids: Sequence[int]) -> dict[int, ItemRow]:
        with self._lock:
            rows = self._store.rows(int(i) for i in ids)
        return {item_id: row for item_id, row in rows.items() if not row.deleted}

    def committed_version(self) -> str:
        """Read from the committed manifest under the commit lock (shared), as ``open`` reads
        it, so a commit in progress is either wholly seen or not at all. A missing lock file is
        not created: a service polls this every few seconds, and must leave a gallery being
        deleted empty (see ``locking``)."""
        with FileLock(self.directory / COMMIT_LOCK).held(exclusive=False, create=False):
            manifest_path, _ = committed_view(self.directory)
            return version_of(GalleryManifest.read(manifest_path))

    def digests(self, paths: Iterable[str]) -> dict[str, str]:
        """The SHA-256 of each live item among ``paths``: lets callers skip re-embedding."""
        with self._lock:
            return {path: sha for path, (_, sha) in self._store.live_by_path(paths).items()}

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of live ``ids`` (as ``search`` returned them), in their order:
        query-time re-ranking needs its shortlist's vectors without exporting the gallery."""
        wanted = np.asarray(ids, dtype=np.int64).ravel()
        with self._lock:
            try:
                return self._index.vectors(wanted)
            except RuntimeError:  # hnswlib: "Label not found" for a deleted or unknown id
                live = set(self._store.live_ids().tolist())
                missing = [int(i) for i in wanted if int(i) not in live]
                raise GalleryError(f"{self.ref}: no live items with ids {missing[:10]}") from None

    def export_vectors(self) -> ExportedVectors:
        with self._lock:
            live = self._store.live_ids()
            rows = self._store.rows(live)
            vectors = self._index.vectors(live)
            following = self._store.next_id()
        items = [rows[int(i)] for i in live]
        return ExportedVectors(live, vectors, items, self.manifest, next_id=following)

    # ------------------------------------------------------------------ internals
    def _mark_deleted(self, ids: Sequence[int]) -> None:
        self._index.mark_deleted(list(ids))
        self._live -= len(ids)
        if ids:
            self._store.mark_deleted(ids)
            self._dirty = True

    def _check_vectors(self, vectors: np.ndarray, stored: bool = True) -> np.ndarray:
        return check_vectors(vectors, self.manifest, self.directory, stored)

    def _check_model(self, expected: ModelRef) -> None:
        try:
            note = check_model(self.ref, self.manifest.model, expected)
        except GalleryMismatchError:
            self.close()
            raise
        if note is not None:
            self.notes.append(note)

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """Hold the lock for a change; a change that fails half-way blocks later commits."""
        self._require_writer()
        with self._lock, self._guard.changing():
            yield

    def _require_writer(self) -> None:
        if self._writer is None:
            raise GalleryError(
                f"{self.directory}: opened read-only; open with mode='rw' to change it"
            )
