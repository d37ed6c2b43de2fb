"""The gallery store protocol: the hnswlib gallery keeps it, and a second store plugs in.

The second store is a brute-force numpy store written here (an oracle, not a mock): added to
the store table as one entry, it carries gallery building, retrieval, evaluation and the ROC
through code that only knows ``GalleryStore``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np
import pytest
from colour_engine import ColourEngine
from colour_engine import colour_split as make_colour_split
from vectors import clustered, exact_top, items, model

from sketchsearch.data.errors import UsageError
from sketchsearch.data.split_spec import SplitPart
from sketchsearch.gallery import (
    Gallery,
    GalleryItem,
    GalleryStore,
    create_gallery,
    open_gallery,
    store_table,
)
from sketchsearch.gallery.errors import GalleryMismatchError, GalleryNotFoundError
from sketchsearch.gallery.items import ItemRow
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
from sketchsearch.gallery.scores import exact_scores
from sketchsearch.gallery.store import WARM_K, check_model, version_of
from sketchsearch.gallery.store_table import StoreKind
from sketchsearch.runtime.evaluation.evaluate import evaluate
from sketchsearch.runtime.evaluation.roc_gallery import roc_for_gallery, write_threshold
from sketchsearch.runtime.gallery_build import add_files, build_gallery, split_sources
from sketchsearch.runtime.retriever import Retriever, model_ref

DIM = 16


class BruteForceStore:
    """Every vector in one numpy array, searched exhaustively; commits keep the manifest."""

    def __init__(self, ref: str, manifest: GalleryManifest) -> None:
        self._ref, self._manifest = ref, manifest
        self._vectors = np.zeros((0, manifest.dim), np.float32)
        self._rows: list[ItemRow] = []  # deleted rows stay, like tombstones

    @property
    def ref(self) -> str:
        return self._ref

    @property
    def manifest(self) -> GalleryManifest:
        return self._manifest

    def search(
        self,
        vectors: np.ndarray,
        k: int,
        ef: int | None = None,
        filter: str | Sequence[str] | None = None,
        threads: int = 1,
    ) -> list[SearchResult]:
        labels = {filter} if isinstance(filter, str) else filter
        keep = [p for p, r in enumerate(self._rows) if not r.deleted]
        keep = [p for p in keep if labels is None or self._rows[p].label in labels]
        scores = exact_scores(vectors, self._vectors[keep])
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        found = np.asarray(keep, dtype=np.int64)[order] if keep else order.astype(np.int64)
        return [
            SearchResult(
                np.array([self._rows[p].id for p in row], np.int64),
                np.take(s, o),
                [self._rows[p] for p in row],
            )
            for row, s, o in zip(found, scores, order, strict=True)
        ]

    def warm(self, k: int = WARM_K) -> int:
        if not any(not r.deleted for r in self._rows):
            return 0
        query = np.ones((1, self._manifest.dim), np.float32) / np.sqrt(self._manifest.dim)
        return len(self.search(query, k)[0].ids)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        position = {r.id: p for p, r in enumerate(self._rows) if not r.deleted}
        return self._vectors[[position[int(i)] for i in np.asarray(ids).ravel()]]

    def add(self, vectors: np.ndarray, items: Sequence[GalleryItem]) -> AddReport:
        present = {r.path: r for r in self._rows if not r.deleted}
        added, updated, skipped = [], [], []
        for vector, item in zip(vectors, items, strict=True):
            old = present.get(item.path)
            if old is not None and old.sha256 == item.sha256:
                skipped.append(item.path)
                continue
            if old is not None:
                self.remove(ids=[old.id])
            new_id = len(self._rows)
            row = ItemRow(new_id, item.path, item.label, item.instance, item.sha256, now(), False)
            self._rows.append(row)
            self._vectors = np.vstack([self._vectors, vector[None]])
            (added if old is None else updated).append(new_id)
        return AddReport(added, updated, skipped)

    def remove(self, ids: Iterable[int] = (), paths: Iterable[str] = ()) -> RemoveReport:
        wanted, names = {int(i) for i in ids}, set(paths)
        hit = [r for r in self._rows if not r.deleted and (r.id in wanted or r.path in names)]
        self._rows = [replace(r, deleted=True) if r in hit else r for r in self._rows]
        found = {str(r.id) for r in hit} | {r.path for r in hit}
        missing = [str(i) for i in sorted(wanted) if str(i) not in found]
        return RemoveReport([r.id for r in hit], missing + sorted(names - found))

    def digests(self, paths: Iterable[str]) -> dict[str, str]:
        wanted = set(paths)
        return {r.path: r.sha256 for r in self._rows if not r.deleted and r.path in wanted}

    def items(self, ids: Sequence[int]) -> dict[int, ItemRow]:
        wanted = {int(i) for i in ids}
        return {r.id: r for r in self._rows if not r.deleted and r.id in wanted}

    def committed_version(self) -> str:
        return version_of(self._manifest)

    def set_threshold(self, threshold: MatchThreshold | None) -> None:
        self._manifest = replace(self._manifest, threshold=threshold)

    def labels(self) -> frozenset[str]:
        return frozenset(r.label for r in self._rows if not r.deleted and r.label is not None)

    def set_source(self, source: GallerySource | None) -> None:
        self._manifest = replace(self._manifest, source=source)

    def info(self) -> GalleryInfo:
        m = self._manifest
        return GalleryInfo(
            self._ref, m.model.describe(), m.model.family, m.dim, m.space, m.M,
            m.ef_construction, m.ef, m.live, m.deleted, len(self._rows), m.generation, m.root,
            m.created_at, m.updated_at, {}, False, m.threshold, m.source,
        )  # fmt: skip

    def export_vectors(self) -> ExportedVectors:
        live = [p for p, r in enumerate(self._rows) if not r.deleted]
        ids = np.array([self._rows[p].id for p in live], np.int64)
        return ExportedVectors(
            ids, self._vectors[live], [self._rows[p] for p in live], self.manifest
        )

    def commit(self) -> None:
        live = sum(not r.deleted for r in self._rows)
        self._manifest = self._manifest.committed(live=live, deleted=len(self._rows) - live)

    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is None:
            self.commit()


@pytest.fixture
def memory_kind(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, BruteForceStore]]:
    """The store table with one more entry: ``memory://NAME``, kept in this dict."""
    stores: dict[str, BruteForceStore] = {}

    def open_memory(
        ref: str, expected: ModelRef | None, mode: str, lock_timeout: float
    ) -> BruteForceStore:
        if ref not in stores:
            raise GalleryNotFoundError(f"{ref}: no such memory store")
        if expected is not None:
            check_model(ref, stores[ref].manifest.model, expected)
        return stores[ref]

    def create_memory(
        ref: str,
        dim: int,
        space: str,
        built_by: ModelRef,
        root: str | None,
        source: GallerySource | None,
    ) -> BruteForceStore:
        stamp = now()
        manifest = GalleryManifest(
            GALLERY_FORMAT, GALLERY_FORMAT_VERSION, 0, built_by, dim, space, 16, 200, 64,
            0, 0, 0, root, stamp, stamp, {}, source=source,
        )  # fmt: skip
        stores[ref] = BruteForceStore(ref, manifest)
        return stores[ref]

    kind = StoreKind("memory", "brute force, in this test", open_memory, create_memory)
    monkeypatch.setattr(store_table, "STORE_KINDS", (*store_table.STORE_KINDS, kind))
    yield stores


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, np.ndarray]:
    vectors = clustered(200, DIM)
    with create_gallery(tmp_path / "g", DIM, model=model()) as gallery:
        gallery.add(vectors, items(200))
    return tmp_path / "g", vectors


def protocol_members() -> list[str]:
    names = [n for n in vars(GalleryStore) if not n.startswith("_")]
    return sorted([*names, "__enter__", "__exit__"])


def assert_keeps_protocol(store: object) -> None:
    """Every member of the protocol, each method with a signature the protocol's callers fit."""
    assert isinstance(store, GalleryStore)
    # what the service compares to tell a new commit (runtime/service/live.py): equal when
    # nothing changed, or it reloads on every poll
    assert store.committed_version() == version_of(store.manifest)
    for name in protocol_members():
        wanted = inspect.getattr_static(GalleryStore, name)
        if isinstance(wanted, property):
            assert hasattr(store, name), name
            continue
        want = inspect.signature(wanted)
        have = inspect.signature(getattr(type(store), name))
        for parameter in want.parameters.values():
            got = have.parameters.get(parameter.name)
            assert got is not None, f"{name}: no parameter {parameter.name}"
            assert (got.kind, got.default) == (parameter.kind, parameter.default), name
            assert got.annotation == parameter.annotation, f"{name}({parameter.name})"
        extra = [p for p in have.parameters.values() if p.name not in want.parameters]
        assert all(p.default is not inspect.Parameter.empty for p in extra), name
        if name != "__enter__":  # Self there, the class itself in a store
            assert have.return_annotation == want.return_annotation, name


def test_the_hnswlib_gallery_keeps_the_protocol(folder) -> None:
    with open_gallery(folder[0]) as store:
        assert type(store) is Gallery
        assert_keeps_protocol(store)
    # A new member is a decision for every backend (ADR 0005), not a convenience.
    assert set(protocol_members()) == {
        "ref", "manifest", "search", "vectors", "add", "remove", "digests", "labels",
        "set_threshold", "set_source", "info", "export_vectors", "commit", "close", "warm",
        "items", "committed_version", "__enter__", "__exit__",
    }  # fmt: skip


def test_the_test_store_keeps_the_protocol(memory_kind) -> None:
    assert_keeps_protocol(create_gallery("memory://x", DIM, model=model()))


def test_the_qdrant_store_keeps_the_protocol(tmp_path) -> None:
    ref = f"qdrant+local://{tmp_path / 'q'}?collection=photos"
    with create_gallery(ref, DIM, model=model()) as store:
        assert type(store).__name__ == "QdrantStore" and store.ref == ref
        assert_keeps_protocol(store)
    with open_gallery(ref) as store:
        assert_keeps_protocol(store)


def test_open_gallery_on_a_path_is_the_folder_gallery(folder) -> None:
    path, vectors = folder
    queries = clustered(10, DIM, seed=1)
    _, oracle = exact_top(queries, vectors, np.arange(200), 5)
    for ref in (path, str(path)):
        with open_gallery(ref, expected_model=model(precision="fp16")) as store:
            assert store.ref == str(path) and store.manifest.live == 200
            found = np.array([r.scores for r in store.search(queries, k=5)])
            np.testing.assert_allclose(found, oracle, atol=1e-5)
            assert isinstance(store, Gallery) and store.notes  # fp16 vs fp32: a note only
    with pytest.raises(GalleryMismatchError, match="rebuild the gallery"):
        open_gallery(path, expected_model=model("family-b"))
    with open_gallery(path, mode="rw") as store:
        store.remove(ids=[3])
    with open_gallery(path) as store:
        exported = store.export_vectors()
    row = exported.items[3]  # id 3 is gone: position 3 holds id 4
    assert (row.id, row.path, row.label, row.instance, row.sha256) == (
        4, "photos/00004.jpg", "c4", "i4", "sha-4"
    )  # fmt: skip


@pytest.mark.parametrize("ref", ["milvus://localhost:19530/photos", "S3://bucket/gallery"])
def test_an_unknown_store_kind_is_a_one_line_usage_error(ref: str) -> None:
    for call in (lambda: open_gallery(ref), lambda: create_gallery(ref, DIM, model=model())):
        with pytest.raises(UsageError) as caught:
            call()
        message = str(caught.value)
        assert "\n" not in message and ref in message and "a folder path" in message
        assert f"unknown store kind {ref.split(':')[0].lower()!r}" in message


@pytest.fixture
def colour_split(tmp_path: Path) -> SplitPart:
    return make_colour_split(tmp_path)


def test_a_second_store_carries_build_retrieve_evaluate_and_roc(
    memory_kind, colour_split, tmp_path
) -> None:
    part, engine = colour_split, ColourEngine()
    sources = split_sources(part, "photo")
    built = build_gallery(engine, "memory://photos", part.root, sources)
    assert (built.gallery, built.indexed) == ("memory://photos", 4)
    build_gallery(engine, tmp_path / "g", part.root, sources)
    again = add_files(engine, "memory://photos", [part.root / "photo"])
    assert (again.skipped, again.embedded) == (4, 0)  # the digests skipped re-embedding
    queries = [part.root / "sketch" / "red" / "q.png", part.root / "sketch" / "green" / "q.png"]
    bound = model_ref(engine.card)
    with open_gallery("memory://photos", bound) as memory, open_gallery(tmp_path / "g") as hnsw:
        answers = [Retriever(engine, s).search_files(queries, k=3) for s in (memory, hnsw)]
        for a, b in zip(*answers, strict=True):  # scores, not paths: the green query ties at 0
            scores = [[m.score for m in answer.matches] for answer in (a, b)]
            np.testing.assert_allclose(scores[0], scores[1], atol=1e-6)
        red = [(m.path, m.label) for m in answers[0][0].matches]
        assert red == [
            ("photo/red/r1.png", "red"),
            ("photo/green/g1.png", "green"),
            ("photo/red/r2.png", "red"),
        ]
        results = [evaluate(engine, s, part) for s in (memory, hnsw)]
        assert results[0].hnsw == pytest.approx(results[1].hnsw)
        assert results[0].exact == pytest.approx(results[1].exact)
        assert results[0].hnsw_recall_at_10 == pytest.approx(1.0)  # the recall it reports
        roc = roc_for_gallery(engine, memory, part, target_fpr=0.01)
        assert roc.auc == pytest.approx(11 / 15)  # worked out in tests/runtime/test_roc.py
    write_threshold("memory://photos", roc)
    with open_gallery("memory://photos") as memory:
        assert Retriever(engine, memory).threshold.source == "gallery"
    with pytest.raises(GalleryMismatchError, match="memory://photos"):
        open_gallery("memory://photos", expected_model=replace(bound, family="other"))
