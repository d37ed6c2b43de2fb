"""The Gallery API on small real indexes, against a brute-force oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from vectors import clustered, exact_top, items, model

from sketchsearch.gallery import Gallery, GalleryItem
from sketchsearch.gallery.errors import (
    GalleryBusyError,
    GalleryError,
    GalleryMismatchError,
    GalleryNotFoundError,
)

DIM = 16


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, np.ndarray]:
    vectors = clustered(300, DIM)
    with Gallery.create(tmp_path / "g", DIM, model=model(), ef=40) as gallery:
        gallery.add(vectors, items(300))
    return tmp_path / "g", vectors


def test_round_trip_gives_identical_results_and_keeps_ef(built) -> None:
    folder, vectors = built
    queries = clustered(20, DIM, seed=1)
    with Gallery.open(folder, mode="rw") as writer:
        before = writer.search(queries, k=10)
    with Gallery.open(folder) as reader:
        after = reader.search(queries, k=10)
        assert reader.manifest.ef == 40 and reader.info().ef == 40
        assert reader._index.raw.ef == 40  # not hnswlib's silent default of 10
    for a, b in zip(before, after, strict=True):
        assert np.array_equal(a.ids, b.ids) and np.allclose(a.scores, b.scores)
        assert [row.path for row in b.items] == [f"photos/{i:05d}.jpg" for i in b.ids]
    _, oracle_scores = exact_top(queries, vectors, np.arange(300), 10)
    with Gallery.open(folder) as reader:  # as wide as the gallery: HNSW at ef 40 may miss one
        wide = reader.search(queries, k=10, ef=300)
    got = np.array([r.scores for r in wide])
    assert np.allclose(got, oracle_scores, atol=1e-5)  # compare scores: ties may reorder ids


def test_incremental_add_skips_duplicates_and_replaces_changed_items(built) -> None:
    folder, vectors = built
    with Gallery.open(folder, mode="rw") as gallery:
        again = gallery.add(vectors[:3], items(3))
        assert again.added == [] and again.updated == [] and len(again.skipped) == 3
        changed = items(1, tag="-edited") + items(1, start=300)
        report = gallery.add(-vectors[:2], changed)
        assert report.updated == [300] and report.added == [301]
        hit = gallery.search(-vectors[:1], k=1)[0]
        assert hit.ids.tolist() == [300] and hit.items[0].sha256 == "sha-0-edited"
        assert 0 not in gallery.search(vectors[:1], k=300)[0].ids  # the old version is gone
    with Gallery.open(folder) as reader:
        info = reader.info()
        assert (info.live, info.deleted) == (301, 1)


def test_removed_items_never_come_back_and_compact_keeps_ids(built) -> None:
    folder, vectors = built
    gone = list(range(0, 300, 3))
    with Gallery.open(folder, mode="rw") as gallery:
        report = gallery.remove(ids=gone[:50], paths=[f"photos/{i:05d}.jpg" for i in gone[50:]])
        assert report.removed == gone and report.not_found == []
        assert gallery.remove(ids=[0], paths=["nope.jpg"]).not_found == ["0", "nope.jpg"]
    with Gallery.open(folder, mode="rw") as gallery:
        found = np.concatenate([r.ids for r in gallery.search(vectors, k=250)])
        assert not set(found.tolist()) & set(gone)
        assert gallery.compact() == 100
    with Gallery.open(folder) as reader:
        assert (reader.info().live, reader.info().deleted) == (200, 0)
        keep = np.array([i for i in range(300) if i not in set(gone)])
        result = reader.search(vectors[keep[:5]], k=1, ef=200)
        assert [r.ids[0] for r in result] == keep[:5].tolist()  # same ids after compaction
        exported = reader.export_vectors()
        assert exported.ids.tolist() == keep.tolist()
        assert np.allclose(exported.vectors, vectors[keep], atol=1e-6)


def test_k_beyond_the_live_count_returns_what_exists(tmp_path: Path) -> None:
    with Gallery.create(tmp_path / "g", DIM, model=model()) as gallery:
        assert gallery.search(clustered(2, DIM), k=5)[0].ids.size == 0  # empty gallery
        gallery.add(clustered(12, DIM), items(12))
        gallery.remove(ids=range(4))
        results = gallery.search(clustered(3, DIM, seed=4), k=50)
        assert [len(r.ids) for r in results] == [8, 8, 8]
        assert all(set(r.ids.tolist()) == set(range(4, 12)) for r in results)
        assert np.all(np.diff(results[0].scores) <= 1e-6)


def test_label_filter_matches_the_oracle(built) -> None:
    folder, vectors = built
    queries = clustered(5, DIM, seed=9)
    wanted = np.array([i for i in range(300) if i % 5 in (1, 3)])
    with Gallery.open(folder) as gallery:
        for k in (1, 10, 200):
            results = gallery.search(queries, k=k, filter=["c1", "c3"])
            _, oracle = exact_top(queries, vectors[wanted], wanted, min(k, len(wanted)))
            assert np.allclose([r.scores for r in results], oracle, atol=1e-5)
            assert all(row.label in ("c1", "c3") for r in results for row in r.items)
        assert gallery.search(queries, k=3, filter="no-such-label")[0].ids.size == 0


def test_hnsw_path_of_the_filter_on_a_larger_gallery(tmp_path: Path) -> None:
    vectors = clustered(6000, DIM, seed=3)
    with Gallery.create(tmp_path / "g", DIM, model=model()) as gallery:
        gallery.add(vectors, items(6000, labels=2))
        queries = clustered(10, DIM, seed=5)
        results = gallery.search(queries, k=10, filter="c0")  # 3000 allowed: hnswlib's filter
        wanted = np.arange(0, 6000, 2)
        _, oracle = exact_top(queries, vectors[wanted], wanted, 10)
        assert all(row.label == "c0" for r in results for row in r.items)
        assert np.mean(np.isclose([r.scores for r in results], oracle, atol=1e-5)) >= 0.95


def test_model_family_mismatch_is_refused_and_precision_variants_accepted(built) -> None:
    folder, _ = built
    with pytest.raises(GalleryMismatchError, match="gallery was built with model resnet10t"):
        Gallery.open(folder, expected_model=model(family="family-b"))
    with Gallery.open(folder, expected_model=model(precision="int8")) as gallery:
        assert gallery.notes == [
            "gallery built at fp32, queried at int8: same weights, vectors are comparable"
        ]
    with Gallery.open(folder, expected_model=model()) as gallery:
        assert gallery.notes == []


def test_bad_requests_get_clear_errors(built, tmp_path: Path) -> None:
    folder, vectors = built
    with pytest.raises(GalleryNotFoundError, match="not a gallery"):
        Gallery.open(tmp_path)
    with Gallery.open(folder) as reader:
        with pytest.raises(GalleryError, match="opened read-only"):
            reader.add(vectors[:1], items(1))
        with pytest.raises(GalleryError, match=r"holds 16-dimensional vectors"):
            reader.search(np.ones((1, 8), np.float32), k=1)
    with Gallery.open(folder, mode="rw") as writer:
        with pytest.raises(GalleryError, match="appears twice"):
            writer.add(vectors[:2], items(1) * 2)
        with pytest.raises(GalleryError, match="relative to the gallery root"):
            writer.add(vectors[:1], [GalleryItem("/abs/x.jpg", "s")])
        with pytest.raises(GalleryError, match="NaN"):
            writer.add(np.full((1, DIM), np.nan, np.float32), items(1, start=999))
        with pytest.raises(GalleryBusyError, match="another process is writing"):
            Gallery.open(folder, mode="rw", lock_timeout=0.1)
    with pytest.raises(GalleryError, match="already exists"):
        Gallery.create(folder, DIM, model=model())
    with (
        pytest.raises(GalleryError, match="unit-length"),
        Gallery.create(tmp_path / "ip", DIM, "ip", model=model()) as ip,
    ):
        ip.add(vectors[:1] * 3, items(1))


def test_an_error_inside_the_block_discards_uncommitted_changes(built) -> None:
    folder, vectors = built
    with pytest.raises(RuntimeError), Gallery.open(folder, mode="rw") as gallery:
        gallery.add(vectors[:5], items(5, start=1000))
        raise RuntimeError("boom")
    with Gallery.open(folder) as reader:
        assert reader.info().live == 300


def test_an_empty_gallery_reopens(tmp_path: Path) -> None:
    with Gallery.create(tmp_path / "g", DIM, model=model()):
        pass
    with Gallery.open(tmp_path / "g", mode="rw") as gallery:
        assert gallery.info().live == 0
        gallery.add(clustered(5, DIM), items(5))
    with Gallery.open(tmp_path / "g", mode="rw") as gallery:
        gallery.remove(ids=range(5))
        gallery.compact()
    with Gallery.open(tmp_path / "g") as gallery:
        assert (gallery.info().live, gallery.info().deleted) == (0, 0)
        assert gallery.search(clustered(1, DIM), k=3)[0].ids.size == 0


def test_ids_are_never_reused_even_after_compaction(built) -> None:
    folder, vectors = built
    with Gallery.open(folder, mode="rw") as gallery:
        gallery.remove(ids=[299])
        gallery.compact()
    with Gallery.open(folder, mode="rw") as gallery:
        assert gallery.add(vectors[:1], items(1, start=500)).added == [300]


def test_query_scale_never_changes_scores(tmp_path: Path) -> None:
    vectors = clustered(50, DIM)
    for space in ("cosine", "ip", "l2"):
        with Gallery.create(tmp_path / space, DIM, space, model=model()) as gallery:
            gallery.add(vectors, items(50))
            unit = gallery.search(vectors[:3], k=5)
            scaled = gallery.search(vectors[:3] * 3, k=5)
        for a, b in zip(unit, scaled, strict=True):
            assert np.allclose(a.scores, b.scores, atol=1e-5), space
            assert abs(a.scores[0] - 1.0) < 1e-5, space


def test_a_failed_change_is_never_committed(built, monkeypatch) -> None:
    folder, vectors = built
    gallery = Gallery.open(folder, mode="rw")

    def fail(*args: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(gallery._store, "insert", fail)
    with pytest.raises(RuntimeError, match="disk on fire"):
        gallery.add(-vectors[:2], items(2, tag="-new"))  # marks 2 replaced, then fails
    with pytest.raises(GalleryError, match="failed half-way"):
        gallery.commit()
    with pytest.raises(GalleryError, match="failed half-way"):
        gallery.remove(ids=[5])
    gallery.close()
    with Gallery.open(folder) as reader:
        assert (reader.info().live, reader.info().deleted) == (300, 0)


def test_a_failed_commit_leaves_nothing_behind(built, monkeypatch) -> None:
    folder, vectors = built
    with Gallery.open(folder, mode="rw") as gallery:
        gallery.add(vectors[:5], items(5, start=900))

        def fail(path: Path) -> None:
            path.write_bytes(b"partial")
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(gallery._store, "save_to", fail)
        with pytest.raises(OSError, match="No space left"):
            gallery.commit()
        monkeypatch.undo()
        assert sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp")) == []
        gallery.remove(ids=[0])
    with Gallery.open(folder) as reader:  # the retried commit saved both changes
        assert (reader.info().live, reader.info().deleted) == (304, 1)
