"""Readers in one process and a writer in another: readers only ever see committed states."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from vectors import clustered, items, model

from sketchsearch.gallery import Gallery

WRITER = Path(__file__).with_name("writer_process.py")


def test_reader_sees_only_complete_states_while_a_writer_commits(tmp_path: Path) -> None:
    folder = tmp_path / "g"
    with Gallery.create(folder, 16, model=model()) as gallery:
        gallery.add(clustered(30, 16), items(30))
    writer = subprocess.Popen(
        [sys.executable, str(WRITER), str(folder), "30", "60"], stdout=subprocess.PIPE, text=True
    )
    seen: set[int] = set()
    deadline = time.monotonic() + 60
    while writer.poll() is None and time.monotonic() < deadline:
        with Gallery.open(folder) as reader:  # the open itself checks every file agrees
            live = reader.info().live
            exported = reader.export_vectors()
            hits = reader.search(exported.vectors, k=1, ef=max(64, live))  # HNSW: wide, exact
        assert live % 30 == 0 and len(exported.ids) == live
        assert [h.ids[0] for h in hits] == exported.ids.tolist()
        assert [h.items[0].path for h in hits] == [f"photos/{i:05d}.jpg" for i in exported.ids]
        seen.add(live)
    assert writer.wait(timeout=60) == 0
    assert len(seen) >= 2  # the reader really did overlap the writer
    with Gallery.open(folder) as final:
        assert final.info().live == 30 * 61


def test_searches_and_inserts_from_threads_do_not_overlap(tmp_path: Path) -> None:
    vectors = clustered(3000, 16, seed=2)
    errors: list[BaseException] = []
    with Gallery.create(tmp_path / "g", 16, model=model()) as gallery:
        gallery.add(vectors[:100], items(100))

        def insert() -> None:
            try:
                for start in range(100, 3000, 100):  # grows past capacity: resize while searching
                    gallery.add(vectors[start : start + 100], items(100, start=start))
            except BaseException as err:  # reported below
                errors.append(err)

        thread = threading.Thread(target=insert)
        thread.start()
        while thread.is_alive():
            result = gallery.search(vectors[:5], k=5)
            assert all(len(r.ids) == 5 for r in result)
        thread.join()
        assert errors == []
        assert gallery.info().live == 3000
        top = gallery.search(vectors[2990:], k=1, ef=3000)
        assert np.array_equal([r.ids[0] for r in top], np.arange(2990, 3000))


def test_polling_the_committed_version_creates_no_file(tmp_path: Path) -> None:
    """A service polls ``committed_version`` every few seconds; if a poll put ``.commit.lock``
    back while `rm -rf` empties the gallery, the final rmdir fails ("Directory not empty")."""
    from sketchsearch.gallery.locking import COMMIT_LOCK
    from sketchsearch.gallery.store import version_of

    folder = tmp_path / "g"
    with Gallery.create(folder, 16, model=model()) as gallery:
        gallery.add(clustered(30, 16), items(30))
    with Gallery.open(folder) as reader:
        (folder / COMMIT_LOCK).unlink()  # as `rm -rf` has, before it reaches the manifest
        assert reader.committed_version() == version_of(reader.manifest)
        assert not (folder / COMMIT_LOCK).exists()
        for name in [p.name for p in folder.iterdir()]:
            (folder / name).unlink()
        folder.rmdir()
