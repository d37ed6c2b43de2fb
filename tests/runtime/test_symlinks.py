"""`gallery build` and `gallery add` follow one symlink rule: a link that leads outside the root
is skipped and reported, the rest of the batch is indexed, and links inside keep their names."""

from __future__ import annotations

from pathlib import Path

import pytest
from colour_engine import ColourEngine, solid

from sketchsearch.gallery.gallery import Gallery
from sketchsearch.runtime.gallery_build import add_files, build_gallery, folder_sources

OUTSIDE = "symlink points outside the root"


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """photos/red/r.png (a file), photos/green/inner.png (a link to it) and
    photos/red/escape.png (a link to a file outside photos/)."""
    root = tmp_path / "photos"
    solid(root / "red" / "r.png", (255, 0, 0))
    secret = solid(tmp_path / "elsewhere" / "secret.png", (0, 0, 255))
    (root / "green").mkdir()
    (root / "green" / "inner.png").symlink_to(root / "red" / "r.png")
    (root / "red" / "escape.png").symlink_to(secret)
    return root


def stored_paths(folder: Path) -> list[str]:
    with Gallery.open(folder) as gallery:
        return sorted(row.path for row in gallery.export_vectors().items)


def test_build_skips_a_link_outside_the_root_and_reports_it(photos, tmp_path) -> None:
    report = build_gallery(ColourEngine(), tmp_path / "g", photos, folder_sources(photos))
    assert report.indexed == 2
    assert [(Path(f.path).name, OUTSIDE in f.problem) for f in report.failed] == [
        ("escape.png", True)
    ]
    assert stored_paths(tmp_path / "g") == ["green/inner.png", "red/r.png"]


def test_add_skips_a_link_outside_the_root_whether_named_or_in_a_folder(photos, tmp_path) -> None:
    engine = ColourEngine()
    first = [s for s in folder_sources(photos) if s.path == "red/r.png"]
    build_gallery(engine, tmp_path / "g", photos, first)

    report = add_files(engine, tmp_path / "g", [photos])  # a folder: the batch carries on
    assert (report.indexed, report.skipped) == (1, 1)
    assert [(Path(f.path).name, OUTSIDE in f.problem) for f in report.failed] == [
        ("escape.png", True)
    ]
    named = add_files(engine, tmp_path / "g", [photos / "red" / "escape.png"])
    assert named.indexed == 0
    assert [(Path(f.path).name, OUTSIDE in f.problem) for f in named.failed] == [
        ("escape.png", True)
    ]
    # the same items as `gallery build` over the folder: the inside link under its own name
    build_gallery(engine, tmp_path / "built", photos, folder_sources(photos))
    assert stored_paths(tmp_path / "g") == stored_paths(tmp_path / "built")
    assert stored_paths(tmp_path / "g") == ["green/inner.png", "red/r.png"]


def test_a_root_that_is_itself_a_link_is_fine(photos, tmp_path) -> None:
    (tmp_path / "alias").symlink_to(photos, target_is_directory=True)
    alias = tmp_path / "alias"
    report = build_gallery(ColourEngine(), tmp_path / "g", alias, folder_sources(alias))
    assert report.indexed == 2 and [Path(f.path).name for f in report.failed] == ["escape.png"]
    again = add_files(ColourEngine(), tmp_path / "g", [alias / "red" / "r.png"])
    assert (again.skipped, again.failed) == (1, [])
