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
    files = json.loads((folder / "manifest.json").read_text())["files"]
    files["index.bin"]["size"] = len(data) // 2
    edit_manifest(folder, files=files)  # sizes agree now
    with pytest.raises(GalleryCorruptError, match=r"truncated: .* cannot hold 200 elements"):
        Gallery.open(folder)
    done = open_in_subprocess(folder)
    assert done.returncode == 3 and "cannot hold 200 elements" in done.stdout, done.stderr


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [
        (16, 10**12, "it holds 1000000000000 elements"),  # element count
        (24, 999, "vectors have"),  # size of one element: another dimension
        (72, 7, "M is 7"),
        (48, 2**31 + 5, "top level or entry point is out of range"),
        (0, 8, "offsets do not match"),  # offsetLevel0
        (32, 3, "offsets do not match"),  # label offset
        (40, 5, "offsets do not match"),  # data offset
        (80, 0x7FF8000000000000, "the header is inconsistent"),  # mult = NaN
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


def link_lists(data: bytes, count: int = 200) -> list[tuple[int, int]]:
    """(level, byte offset of its upper-level links) for every element, walking the file."""
    size_data = int.from_bytes(data[24:32], "little")
    position, found = 96 + count * size_data, []
    for _ in range(count):
        length = int.from_bytes(data[position : position + 4], "little")
        found.append((length // (16 * 4 + 4), position + 4))
        position += 4 + length
    return found


def test_crafted_upper_levels_and_entry_point(folder: Path) -> None:
    index = folder / "index.bin"
    good = index.read_bytes()
    lists = link_lists(good)
    upper = next(e for e, (level, _) in enumerate(lists) if level > 0)
    flat = next(e for e, (level, _) in enumerate(lists) if level == 0)
    bad = bytearray(good)
    links = lists[upper][1]
    bad[links : links + 8] = (1).to_bytes(4, "little") + flat.to_bytes(4, "little")
    index.write_bytes(bytes(bad))  # a level-1 link to an element that has only level 0
    with pytest.raises(GalleryCorruptError, match="element without that level"):
        Gallery.open(folder)
    assert open_in_subprocess(folder).returncode == 3
    bad = bytearray(good)
    bad[52:56] = flat.to_bytes(4, "little")  # entry point on level 0
    index.write_bytes(bytes(bad))
    with pytest.raises(GalleryCorruptError, match="entry point is not on the top level"):
        Gallery.open(folder)


def test_labels_that_do_not_match_the_item_database(folder: Path) -> None:
    index = folder / "index.bin"
    data = bytearray(index.read_bytes())
    size_data = int.from_bytes(data[24:32], "little")
    label_offset = int.from_bytes(data[32:40], "little")
    data[96 + label_offset : 96 + label_offset + 8] = (777).to_bytes(8, "little")
    index.write_bytes(bytes(data))
    with pytest.raises(GalleryCorruptError, match="ids or delete marks differ"):
        Gallery.open(folder)
    assert size_data > 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"files": []}, "files must map file names"),
        ({"max_elements": -1}, "max_elements must be an integer"),
        ({"space": "dot"}, "space 'dot' is not one of"),
        ({"dim": "16"}, "dim must be an integer"),
        ({"live": True}, "live must be an integer"),
        ({"model": {"family": "", "name": "x", "dim": 16}}, "model.family must be"),
    ],
)
def test_hand_edited_manifest_fields(folder: Path, change: dict, message: str) -> None:
    edit_manifest(folder, **change)
    with pytest.raises(GalleryCorruptError, match=message):
        Gallery.open(folder)


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
    with pytest.raises(GalleryCorruptError, match=r"reads version 2 \(and 1\)"):
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
