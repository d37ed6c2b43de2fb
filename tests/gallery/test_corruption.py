"""Damaged gallery files give one clear error, never a crash inside hnswlib."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from vectors import clustered, items, model

from sketchsearch.gallery import Gallery
from sketchsearch.gallery.errors import GalleryCorruptError

DIM = 16


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    with Gallery.create(tmp_path / "g", DIM, model=model()) as gallery:
        gallery.add(clustered(200, DIM), items(200))
    return tmp_path / "g"


def edit_manifest(folder: Path, **changes: object) -> None:
    path = folder / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def open_in_subprocess(folder: Path) -> subprocess.CompletedProcess[str]:
    """A crash in C++ code would kill pytest itself; a child process shows it as a signal."""
    code = (
        "import sys\nfrom sketchsearch.gallery import Gallery\n"
        "from sketchsearch.gallery.errors import GalleryCorruptError\n"
        "try:\n    Gallery.open(sys.argv[1]).search([[1.0] * 16], k=5)\n"
        "except GalleryCorruptError as err:\n    print(err)\n    sys.exit(3)\n"
    )
    return subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True)


def test_truncated_index(folder: Path) -> None:
    index = folder / "index.bin"
    data = index.read_bytes()
    index.write_bytes(data[: len(data) // 2])
    with pytest.raises(GalleryCorruptError, match=r"index.bin: \d+ bytes, the manifest says"):
        Gallery.open(folder)
    edit_manifest(folder, files={"index.bin": len(data) // 2, "items.sqlite": 8192 * 3})
    done = open_in_subprocess(folder)
    assert done.returncode == 3, done.stderr


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [
        (16, 10**12, "it holds 1000000000000 elements"),  # element count
        (24, 999, "vectors have"),  # size of one element: another dimension
        (72, 7, "M is 7"),
        (48, 2**31 + 5, "the header is inconsistent"),  # top level and entry point
    ],
)
def test_corrupt_index_header(folder: Path, offset: int, value: int, message: str) -> None:
    index = folder / "index.bin"
    data = bytearray(index.read_bytes())
    data[offset : offset + 8] = int(value).to_bytes(8, "little")
    index.write_bytes(bytes(data))
    with pytest.raises(GalleryCorruptError, match=message):
        Gallery.open(folder)
    assert open_in_subprocess(folder).returncode == 3


def test_corrupt_neighbour_ids_and_link_lists(folder: Path) -> None:
    index = folder / "index.bin"
    good = index.read_bytes()
    bad = bytearray(good)
    bad[96 + 4 : 96 + 8] = (10**6).to_bytes(4, "little")  # element 0's first neighbour
    index.write_bytes(bytes(bad))
    with pytest.raises(GalleryCorruptError, match="neighbour id points past the last element"):
        Gallery.open(folder)
    bad = bytearray(good)
    size_data = int.from_bytes(good[24:32], "little")
    tail = 96 + 200 * size_data
    bad[tail : tail + 4] = (12345).to_bytes(4, "little")  # element 0's upper-level list size
    index.write_bytes(bytes(bad))
    with pytest.raises(GalleryCorruptError, match="impossible link-list size"):
        Gallery.open(folder)
    assert open_in_subprocess(folder).returncode == 3


def test_manifest_claiming_more_elements_than_the_file_holds(folder: Path) -> None:
    edit_manifest(folder, live=5000)
    with pytest.raises(GalleryCorruptError, match="it holds 200 elements, the manifest says 5000"):
        Gallery.open(folder)


def test_broken_manifest_and_item_database(folder: Path) -> None:
    manifest = folder / "manifest.json"
    good = manifest.read_text()
    manifest.write_text(good[:40])
    with pytest.raises(GalleryCorruptError, match=r"manifest\.json: not valid JSON"):
        Gallery.open(folder)
    manifest.write_text(json.dumps({**json.loads(good), "surprise": 1}))
    with pytest.raises(GalleryCorruptError, match=r"unexpected keys \['surprise'\]"):
        Gallery.open(folder)
    manifest.write_text(json.dumps({**json.loads(good), "format_version": 7}))
    with pytest.raises(GalleryCorruptError, match="reads version 1"):
        Gallery.open(folder)
    manifest.write_text(good)
    items_file = folder / "items.sqlite"
    size = items_file.stat().st_size
    items_file.write_bytes(b"\0" * size)  # same size, garbage content
    with pytest.raises(GalleryCorruptError, match=r"items\.sqlite: not a readable item database"):
        Gallery.open(folder)
    items_file.unlink()
    with pytest.raises(GalleryCorruptError, match=r"items\.sqlite: missing"):
        Gallery.open(folder)


def test_files_from_different_generations_are_detected(folder: Path, tmp_path: Path) -> None:
    old_items = (folder / "items.sqlite").read_bytes()
    with Gallery.open(folder, mode="rw") as gallery:
        gallery.remove(ids=[1])  # same file sizes, new generation
    (folder / "items.sqlite").write_bytes(old_items)
    with pytest.raises(GalleryCorruptError, match="generation"):
        Gallery.open(folder)
