"""Warming a gallery at open: one throw-away search runs the statements later searches use.

What is warmed is observed through SQLite's trace callback (every statement the item database
runs), never through timings.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from vectors import clustered, items, model

from sketchsearch.gallery import Gallery, create_gallery, open_gallery

DIM = 16
ITEM_LOOKUP = "FROM items WHERE id IN ("


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    with create_gallery(tmp_path / "g", DIM, model=model()) as gallery:
        gallery.add(clustered(200, DIM), items(200))
    return tmp_path / "g"


def traced(gallery: Gallery) -> list[str]:
    """The statements the gallery's item database runs from now on."""
    statements: list[str] = []
    gallery._store.connection.set_trace_callback(statements.append)
    return statements


def lookups(statements: list[str]) -> list[int]:
    """The number of ids each item lookup asked for."""
    return [s.split(ITEM_LOOKUP, 1)[1].count(",") + 1 for s in statements if ITEM_LOOKUP in s]


def test_warm_runs_a_search_and_its_item_lookup(folder: Path) -> None:
    with open_gallery(folder) as gallery:
        statements = traced(gallery)
        assert gallery.warm() == 10
        assert lookups(statements) == [10]  # the lookup a k=10 search prepares
        assert gallery.warm(k=25) == 25
        assert lookups(statements) == [10, 25]


def test_warm_asks_for_no_more_than_the_gallery_holds(tmp_path: Path) -> None:
    with create_gallery(tmp_path / "g", DIM, model=model()) as gallery:
        gallery.add(clustered(3, DIM), items(3))
    with open_gallery(tmp_path / "g") as gallery:
        assert gallery.warm() == 3


def test_an_empty_gallery_warms_without_a_search(tmp_path: Path) -> None:
    create_gallery(tmp_path / "g", DIM, model=model()).close()
    with open_gallery(tmp_path / "g") as gallery:
        statements = traced(gallery)
        assert gallery.warm() == 0
        assert statements == []


def test_warm_changes_nothing(folder: Path) -> None:
    query = clustered(1, DIM, seed=5)
    with open_gallery(folder, mode="rw") as gallery:
        before = gallery.search(query, 5)[0]
        gallery.warm()
        after = gallery.search(query, 5)[0]
        assert not gallery.info().uncommitted_changes
    assert after.ids.tolist() == before.ids.tolist()
    np.testing.assert_array_equal(after.scores, before.scores)


def test_a_copy_without_dotfiles_and_write_access_warms(folder: Path, tmp_path: Path) -> None:
    """Serving from a copied gallery (no lock files), read-only where the user is not root."""
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in folder.iterdir():
        if not path.name.startswith("."):
            shutil.copy(path, copy / path.name)
    os.chmod(copy, 0o555)
    try:
        with open_gallery(copy) as gallery:
            statements = traced(gallery)
            assert gallery.warm() == 10
            assert lookups(statements) == [10]
    finally:
        os.chmod(copy, 0o755)
    if os.geteuid() != 0:  # root writes read-only folders: the lock file appears there
        assert not (copy / ".commit.lock").exists()
