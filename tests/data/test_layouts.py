from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from imagetree import VARIANT, encode, write_image

from sketchsearch.data.errors import LayoutError
from sketchsearch.data.layouts import Item, parse_item, scan


def kinds(collection) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for warning in collection.warnings:
        found.setdefault(warning.kind, []).append(warning.path)
    return found


def test_hyphenated_categories_pair_sketches_with_photos(sketchy_tree) -> None:
    root = sketchy_tree({"hot-air_balloon": {"n1_1": 2}, "jack-o-lantern": {"n2_7": 1}})
    collection = scan(root)
    assert collection.layout == "sketchy"
    assert collection.categories == ("hot-air_balloon", "jack-o-lantern")
    assert collection.warnings == []
    sketch = next(i for i in collection.items if i.path.endswith("n1_1-2.png"))
    assert sketch == Item(
        f"sketch/{VARIANT}/hot-air_balloon/n1_1-2.png",
        "sketch",
        "hot-air_balloon",
        "hot-air_balloon/n1_1",
    )
    photo = next(i for i in collection.items if i.domain == "photo" and "n2_7" in i.path)
    assert photo.instance == "jack-o-lantern/n2_7"
    for item in collection.items:  # the path alone gives back the labels
        assert parse_item("sketchy", item.path) == item


def test_orphans_empty_categories_and_stray_files_are_named_warnings(sketchy_tree) -> None:
    root = sketchy_tree({"cat": {"p1": 1}, "dog": {"p2": 1}})
    write_image(root / "sketch" / VARIANT / "cat" / "ghost-1.png")  # photo missing
    write_image(root / "sketch" / VARIANT / "cat" / "nonumber.png")  # no -<n>
    (root / "photo" / VARIANT / "empty").mkdir()
    (root / "sketch" / VARIANT / "empty").mkdir()
    (root / "photo" / VARIANT / "cat" / "notes.txt").write_text("hi")
    (root / "photo" / VARIANT / "README").write_text("stray")
    write_image(root / "photo" / VARIANT / "lonely" / "p9.jpg")  # photos without sketches
    collection = scan(root)
    found = kinds(collection)
    assert found["orphan-sketch"] == [f"sketch/{VARIANT}/cat/ghost-1.png"]
    assert found["bad-sketch-name"] == [f"sketch/{VARIANT}/cat/nonumber.png"]
    assert sorted(found["empty-category"]) == [f"photo/{VARIANT}/empty", f"sketch/{VARIANT}/empty"]
    assert found["not-an-image"] == [f"photo/{VARIANT}/cat/notes.txt"]
    assert found["stray-file"] == [f"photo/{VARIANT}/README"]
    assert found["no-sketches"] == [f"sketch/{VARIANT}/lonely"]
    assert collection.categories == ("cat", "dog", "lonely")  # empty ones get no label
    assert all("ghost" not in i.path and "nonumber" not in i.path for i in collection.items)
    assert collection.warning_counts()["orphan-sketch"] == 1
    with pytest.raises(LayoutError, match=r"7 problem\(s\) in strict mode"):
        scan(root, strict=True)


def test_verify_leaves_out_unreadable_files_and_names_them(sketchy_tree) -> None:
    root = sketchy_tree({"cat": {"p1": 1, "p2": 1, "p3": 1}})
    sketch_dir = root / "sketch" / VARIANT / "cat"
    photo_dir = root / "photo" / VARIANT / "cat"
    (sketch_dir / "p1-1.png").write_bytes(b"")  # 0 bytes
    (sketch_dir / "p2-1.png").write_text("plain text named .png")
    good = (photo_dir / "p3.jpg").read_bytes()
    (photo_dir / "p3.jpg").write_bytes(good[:20] + b"\0" * 200 + good[220:])  # corrupt JPEG
    assert kinds(scan(root)) == {}  # names only: no file is opened
    collection = scan(root, verify=True)
    messages = {w.path: w.message for w in collection.warnings}
    assert messages[f"sketch/{VARIANT}/cat/p1-1.png"] == "empty file (0 bytes)"
    assert messages[f"sketch/{VARIANT}/cat/p2-1.png"].startswith("not an image: it holds text")
    assert messages[f"photo/{VARIANT}/cat/p3.jpg"].startswith("corrupt JPEG")
    assert messages[f"sketch/{VARIANT}/cat/p3-1.png"] == "its photo is unreadable"
    assert [i.path for i in collection.items] == [
        f"photo/{VARIANT}/cat/p1.jpg",
        f"photo/{VARIANT}/cat/p2.jpg",
    ]


def test_grayscale_rgba_16bit_and_unicode_files_pass_verification(sketchy_tree) -> None:
    root = sketchy_tree({"tür": {"ф1": 0}})
    sketch_dir = root / "sketch" / VARIANT / "tür"
    sketch_dir.joinpath("ф1-1.png").write_bytes(encode(np.full((8, 8), 9, np.uint8), ".png"))
    sketch_dir.joinpath("ф1-2.png").write_bytes(encode(np.zeros((8, 8, 4), np.uint8), ".png"))
    sketch_dir.joinpath("ф1-3.png").write_bytes(encode(np.full((8, 8), 4000, np.uint16), ".png"))
    collection = scan(root, verify=True)
    assert collection.warnings == []
    assert len([i for i in collection.items if i.domain == "sketch"]) == 3
    assert {i.instance for i in collection.items} == {"tür/ф1"}


def test_scan_does_not_depend_on_creation_order(sketchy_tree, tmp_path: Path) -> None:
    spec = {f"c{i}": {f"c{i}_{j}": 1 for j in range(3)} for i in range(5)}
    order = list(spec)
    random.Random(1).shuffle(order)
    first = scan(sketchy_tree(spec, tmp_path / "a"))
    second = scan(sketchy_tree(spec, tmp_path / "b", order=order))
    assert [i.path for i in first.items] == [i.path for i in second.items]
    assert first.categories == second.categories == tuple(sorted(spec))
    assert first.file_names == second.file_names


def test_generic_layout(tmp_path: Path) -> None:
    for domain in ("query_things", "gallery_things"):
        for category in ("b", "a"):
            for n in range(2):
                write_image(tmp_path / "g" / domain / category / f"{domain}{n}.png")
    collection = scan(tmp_path / "g")
    assert collection.layout == "generic"
    assert collection.domains == ("gallery_things", "query_things")  # sorted by default
    assert collection.categories == ("a", "b")
    assert all(i.instance is None for i in collection.items)
    chosen = scan(tmp_path / "g", domains=["query_things", "gallery_things"])
    assert chosen.domains == ("query_things", "gallery_things")


def test_paired_layout_pairs_equal_names_and_splits_pairs_together(tmp_path: Path) -> None:
    from sketchsearch.data.evaluation import Match, relevance_matrix
    from sketchsearch.data.split_file import build_split_file, load_split, save_split
    from sketchsearch.data.splits import SplitConfig, make_split

    root = tmp_path / "p"
    for category in ("faces", "tools"):
        for n in range(6):
            for domain in ("sketch", "photo"):
                write_image(root / domain / category / f"E{n}.png", seed=n)
    write_image(root / "photo" / "tools" / "lonely.png")  # no drawing: an instance of its own
    generic = scan(root, "generic", domains=["sketch", "photo"])
    assert all(item.instance is None for item in generic.items)
    paired = scan(root, "paired", domains=["sketch", "photo"])
    assert paired.layout == "paired" and not paired.warnings
    assert {i.instance for i in paired.items if i.path.endswith("E3.png")} == {
        "faces/E3",
        "tools/E3",
    }
    assert all(parse_item("paired", i.path) == i for i in paired.items)
    config = SplitConfig(seed=1, fractions=(0.5, 0.25, 0.25))
    split = build_split_file(paired, config, make_split(paired, config))
    for part in ("train", "val", "test"):
        items = split.part_items(part)
        sketches = {i.instance for i in items if i.domain == "sketch"}
        photos = {i.instance for i in items if i.domain == "photo"}
        assert sketches <= photos  # a drawing and its colour image never straddle parts
    saved = save_split(split, tmp_path / "split.json")
    reloaded, _ = load_split(saved, root)
    queries = [i for i in reloaded.part_items("train") if i.domain == "sketch"]
    gallery = [i for i in reloaded.part_items("train") if i.domain == "photo"]
    relevance = relevance_matrix(queries, gallery, Match.INSTANCE)
    assert (relevance.sum(axis=1) == 1).all()  # each drawing finds exactly its own image


def test_layout_errors_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="data root not found"):
        scan(tmp_path / "missing")
    (tmp_path / "three" / "a").mkdir(parents=True)
    (tmp_path / "three" / "b").mkdir()
    (tmp_path / "three" / "c").mkdir()
    with pytest.raises(LayoutError, match=r"exactly two domain folders, found 3 \(a, b, c\)"):
        scan(tmp_path / "three")
    (tmp_path / "s" / "photo" / "tx_other").mkdir(parents=True)
    (tmp_path / "s" / "sketch" / "tx_other").mkdir(parents=True)
    with pytest.raises(LayoutError, match=r"variant folder not found \(found: tx_other\)"):
        scan(tmp_path / "s")
    assert scan(tmp_path / "s", variant="tx_other").items == []
