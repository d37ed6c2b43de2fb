"""What a gallery's images are (its source), recorded in the manifest for evaluation to check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from vectors import clustered, items, model

from sketchsearch.gallery import Gallery
from sketchsearch.gallery.commit import MANIFEST_FILE
from sketchsearch.gallery.errors import GalleryCorruptError
from sketchsearch.gallery.manifest import GalleryManifest, GallerySource

SPLIT = GallerySource(
    kind="split", domain="photo", split_fingerprint="abc123", part="test", split_file="s.json"
)


def make(folder: Path, source: GallerySource | None) -> Path:
    with Gallery.create(folder, 16, model=model(), source=source) as gallery:
        gallery.add(clustered(5, 16), items(5))
    return folder


def test_source_round_trips_and_shows_in_info(tmp_path: Path) -> None:
    folder = make(tmp_path / "g", SPLIT)
    with Gallery.open(folder) as reader:
        assert reader.manifest.source == SPLIT and reader.info().source == SPLIT
    assert "the photo images of s.json:test" in SPLIT.describe()
    assert "domain unknown" in GallerySource(kind="folder").describe()


def test_a_gallery_without_a_source_leaves_it_out_of_the_file(tmp_path: Path) -> None:
    """Older galleries have no source: they stay readable, and ours stay readable by them."""
    folder = make(tmp_path / "g", None)
    assert "source" not in json.loads((folder / MANIFEST_FILE).read_text())
    with Gallery.open(folder) as reader:
        assert reader.manifest.source is None


def test_set_source_is_committed(tmp_path: Path) -> None:
    folder = make(tmp_path / "g", SPLIT)
    mixed = GallerySource(kind="mixed", split_fingerprint="abc123", part="test")
    with Gallery.open(folder, mode="rw") as writer:
        writer.set_source(mixed)
    with Gallery.open(folder) as reader:
        assert reader.manifest.source == mixed


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("photos", "source must be an object"),
        ({"domain": "photo"}, "missing"),
        ({"kind": "camera"}, "source.kind 'camera'"),
        ({"kind": "split", "domain": 3}, "source.domain must be a string"),
        ({"kind": "split", "colour": "red"}, "unexpected keys"),
    ],
)
def test_a_malformed_source_is_refused(tmp_path: Path, source: object, message: str) -> None:
    folder = make(tmp_path / "g", SPLIT)
    raw = json.loads((folder / MANIFEST_FILE).read_text())
    raw["source"] = source
    with pytest.raises(GalleryCorruptError, match=message):
        GalleryManifest.from_json(json.dumps(raw), "manifest")


def test_removing_items_marks_a_split_gallery_partial(tmp_path: Path) -> None:
    """Evaluation must not present what is left of a split's part as the whole part."""
    folder = make(tmp_path / "g", SPLIT)
    with Gallery.open(folder, mode="rw") as writer:
        writer.remove(ids=[999])  # nothing removed: nothing changes
    assert Gallery.open(folder).manifest.source == SPLIT
    with Gallery.open(folder, mode="rw") as writer:
        writer.remove(ids=[0])
    with Gallery.open(folder) as reader:
        source = reader.manifest.source
    assert source is not None and source.partial and source.domain == "photo"
    assert source.describe().endswith(", some removed later")
    folder_gallery = make(tmp_path / "f", GallerySource(kind="folder"))
    with Gallery.open(folder_gallery, mode="rw") as writer:
        writer.remove(ids=[0])
    assert Gallery.open(folder_gallery).manifest.source == GallerySource(kind="folder")
