"""A gallery refuses item paths that would leave its root: on add, and on opening an edited one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from vectors import clustered, items, model

from sketchsearch.cli.main import cli, run
from sketchsearch.data.errors import ExitCode
from sketchsearch.gallery import Gallery, GalleryItem
from sketchsearch.gallery.errors import GalleryCorruptError, GalleryError

DIM = 16


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    with Gallery.create(tmp_path / "g", DIM, model=model()) as gallery:
        gallery.add(clustered(6, DIM), items(6))
    return tmp_path / "g"


def edit_path(folder: Path, item_id: int, path: str) -> None:
    """Change one row as a hand edit would, keeping the file's size (the manifest checks it)."""
    database = folder / "items.sqlite"
    size = database.stat().st_size
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE items SET path = ? WHERE id = ?", (path, item_id))
    connection.close()
    assert database.stat().st_size == size


@pytest.mark.parametrize("bad", ["/etc/hostname", "../outside.jpg", "photos/../../x.jpg"])
def test_an_edited_item_path_outside_the_root_is_refused_on_open(folder, bad) -> None:
    edit_path(folder, 3, bad)
    for mode in ("r", "rw"):
        with pytest.raises(GalleryCorruptError) as caught:
            Gallery.open(folder, mode=mode)
        message = str(caught.value)
        assert repr(bad) in message and "items.sqlite" in message and "\n" not in message
        assert "relative to the gallery root" in message and "gallery build" in message


def test_a_deleted_row_with_a_bad_path_is_refused_too(folder) -> None:
    with Gallery.open(folder, mode="rw") as gallery:
        gallery.remove(ids=[2])
    edit_path(folder, 2, "/etc/hostname")
    with pytest.raises(GalleryCorruptError, match="/etc/hostname"):
        Gallery.open(folder)


def test_the_cli_reports_the_bad_path_in_one_line(folder, capsys) -> None:
    assert run(cli, ["gallery", "info", str(folder)]) == ExitCode.OK
    capsys.readouterr()
    edit_path(folder, 0, "/etc/hostname")
    assert run(cli, ["gallery", "info", str(folder)]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "'/etc/hostname'" in err and "is absolute" in err


def test_adding_a_bad_path_is_refused_and_nothing_is_added(folder) -> None:
    with Gallery.open(folder, mode="rw") as gallery:
        for bad in ["/abs/x.jpg", "../x.jpg", "photos/./x.jpg", "photos//x.jpg", "photos\\x.jpg"]:
            with pytest.raises(GalleryError) as caught:
                gallery.add(clustered(2, DIM, seed=5), [*items(1, start=50), GalleryItem(bad, "s")])
            assert repr(bad) in str(caught.value) and "\n" not in str(caught.value)
    with Gallery.open(folder) as reader:
        assert reader.info().live == 6
