from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from imagetree import VARIANT, uniform_spec, write_image

from sketchsearch.data.errors import SplitError, SplitFileError, SplitMismatchError
from sketchsearch.data.layouts import scan
from sketchsearch.data.split_file import (
    SplitFile,
    build_split_file,
    load_split,
    read_split,
    save_split,
)
from sketchsearch.data.splits import PARTS, SplitConfig, allocate, make_split


def split_of(root: Path, **options) -> SplitFile:
    collection = scan(root)
    config = SplitConfig(**options)
    return build_split_file(collection, config, make_split(collection, config))


def part_of_each(split: SplitFile, key) -> dict[str, set[str]]:
    """Which parts each unit (from ``key(item)``) appears in."""
    seen: dict[str, set[str]] = {}
    for part in PARTS:
        for item in split.part_items(part):
            seen.setdefault(key(item), set()).add(part)
    return seen


@pytest.fixture
def root(sketchy_tree) -> Path:
    return sketchy_tree(uniform_spec(categories=10, photos=20, sketches=2))


def test_deterministic_for_a_seed_and_different_for_another(root: Path) -> None:
    first, again = split_of(root, seed=3), split_of(root, seed=3)
    assert first.to_json() == again.to_json()
    assert split_of(root, seed=4).items != first.items


def test_soft_split_never_separates_a_photo_from_its_sketches(root: Path) -> None:
    split = split_of(root, policy="soft", seed=1)
    parts = part_of_each(split, key=lambda item: item.instance)
    assert len(parts) == 200 and all(len(p) == 1 for p in parts.values())
    for part in PARTS:  # every category appears in every part (unseen images, seen classes)
        assert len(split.category_parts[part]) == 10
        photos = {i.instance for i in split.part_items(part) if i.domain == "photo"}
        sketches = {i.instance for i in split.part_items(part) if i.domain == "sketch"}
        assert sketches == photos


def test_fractions_are_respected_within_rounding(root: Path) -> None:
    split = split_of(root, fractions=(0.7, 0.2, 0.1))
    assert split.counts == {
        "train": {"sketch": 280, "photo": 140},
        "val": {"sketch": 80, "photo": 40},
        "test": {"sketch": 40, "photo": 20},
    }
    for total in range(3, 60):
        sizes = allocate(total, (0.8, 0.1, 0.1))
        assert sum(sizes) == total and min(sizes) >= 1  # no part silently empty
    for total in range(10, 60):
        sizes = allocate(total, (0.8, 0.1, 0.1))
        assert all(abs(s - total * f) <= 1 for s, f in zip(sizes, (0.8, 0.1, 0.1), strict=True))


def test_hard_split_keeps_each_category_in_one_part(root: Path) -> None:
    split = split_of(root, policy="hard", seed=5)
    parts = part_of_each(split, key=lambda item: item.category)
    assert all(len(p) == 1 for p in parts.values())
    assert [len(split.category_parts[p]) for p in PARTS] == [8, 1, 1]


def test_classes_file_fixes_the_test_categories(root: Path) -> None:
    split = split_of(root, policy="hard", test_categories=("cat03", "cat07"), seed=9)
    assert split.category_parts["test"] == ("cat03", "cat07")
    assert not {"cat03", "cat07"} & set(split.category_parts["train"] + split.category_parts["val"])
    with pytest.raises(SplitError, match=r"'cat3' \(did you mean 'cat03'\?\)"):
        split_of(root, policy="hard", test_categories=("cat3",))
    with pytest.raises(SplitError, match="use it with --policy hard"):
        SplitConfig(policy="soft", test_categories=("cat03",))


def test_small_categories_never_leak_into_every_part(sketchy_tree, tmp_path: Path) -> None:
    spec = uniform_spec(categories=2, photos=10, sketches=1)
    spec["tiny"] = {"t1": 1, "t2": 1}
    root = sketchy_tree(spec)
    with pytest.raises(SplitError, match=r"category 'tiny' has 2 instances.*needs at least 3"):
        split_of(root)
    kept = split_of(root, small_categories="train")
    assert part_of_each(kept, key=lambda i: i.category)["tiny"] == {"train"}
    assert kept.small_categories == {"tiny": "train"}
    dropped = split_of(root, small_categories="drop")
    assert "tiny" not in part_of_each(dropped, key=lambda i: i.category)
    assert split_of(root, fractions=(0.5, 0.5, 0.0)).counts["test"] == {"sketch": 0, "photo": 0}


def test_generic_layout_splits_both_domains_per_category(tmp_path: Path) -> None:
    for domain in ("photo_like", "sketch_like"):
        for category in ("a", "b"):
            for n in range(10):
                write_image(tmp_path / "g" / domain / category / f"{n}.png", seed=n)
    split = split_of(tmp_path / "g", seed=2)
    for part, expected in zip(PARTS, (8, 1, 1), strict=True):
        for domain in split.domains:
            for category in ("a", "b"):
                found = [
                    i
                    for i in split.part_items(part)
                    if i.domain == domain and i.category == category
                ]
                assert len(found) == expected


def test_split_file_round_trip_with_relative_paths(root: Path, tmp_path: Path) -> None:
    split = split_of(root)
    path = save_split(split, tmp_path / "out" / "split.json")
    assert read_split(path) == split
    text = path.read_text()
    assert str(root) not in text and str(tmp_path) not in text
    paths = [p for by in split.items.values() for ps in by.values() for p in ps]
    assert all(p.startswith(("photo/", "sketch/")) for p in paths)
    assert split.fractions == {"train": 0.8, "val": 0.1, "test": 0.1}


def test_split_file_rejects_other_versions_and_unknown_keys(root: Path, tmp_path: Path) -> None:
    raw = json.loads(split_of(root).to_json())
    for change, message in [
        ({"format_version": 99}, r"reads version 2 \(and 1\)"),
        ({"extra": 1}, r"unexpected keys \['extra'\]"),
        ({"format": "other"}, "not a sketchsearch split file"),
    ]:
        (tmp_path / "bad.json").write_text(json.dumps({**raw, **change}))
        with pytest.raises(SplitFileError, match=message):
            read_split(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(SplitFileError, match="not valid JSON"):
        read_split(tmp_path / "broken.json")
    with pytest.raises(SplitFileError, match="split file not found"):
        read_split(tmp_path / "none.json")


def test_fingerprint_detects_a_changed_data_set(root: Path, tmp_path: Path) -> None:
    path = save_split(split_of(root), tmp_path / "split.json")
    load_split(path, root)  # unchanged: fine
    moved = root / "photo" / VARIANT / "cat00" / "c00p000.jpg"
    shutil.move(moved, tmp_path / "elsewhere.jpg")
    with pytest.raises(SplitMismatchError, match=r"1 missing, e.g. photo/.*/cat00/c00p000.jpg"):
        load_split(path, root)
    shutil.move(tmp_path / "elsewhere.jpg", moved)
    write_image(root / "photo" / VARIANT / "cat00" / "new.jpg")
    with pytest.raises(SplitMismatchError, match="1 not in the split"):
        load_split(path, root)


def test_invalid_configs_are_refused() -> None:
    with pytest.raises(SplitError, match=r"sum to 1\.1"):
        SplitConfig(fractions=(0.8, 0.2, 0.1))
    with pytest.raises(SplitError, match="train fraction"):
        SplitConfig(fractions=(0.0, 0.5, 0.5))
    with pytest.raises(SplitError, match="unknown split policy"):
        SplitConfig(policy="medium")


def test_the_split_file_has_the_ordinary_file_mode(root: Path, tmp_path: Path) -> None:
    """Written through the atomic writer with the umask's mode (it was 0600 via mkstemp)."""
    import os

    old = os.umask(0o027)
    try:
        written = save_split(split_of(root), tmp_path / "out" / "split.json")
    finally:
        os.umask(old)
    assert written.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in written.parent.iterdir()] == ["split.json"]  # no temporary left
