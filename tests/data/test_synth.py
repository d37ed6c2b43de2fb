"""The synthetic demo data: layout, determinism, style, pairing, and the contact sheet."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from sketchsearch.data.contact_sheet import GAP, write_contact_sheet
from sketchsearch.data.errors import SketchsearchError, UsageError
from sketchsearch.data.imagefile import read_image
from sketchsearch.data.layouts import SKETCHY_DEFAULT_VARIANT, scan
from sketchsearch.data.shapes import CATEGORY_NAMES, draw
from sketchsearch.data.synth import (
    SynthConfig,
    generate,
    object_mask,
    photo_id,
    render_instance,
)

TINY = SynthConfig(categories=4, photos_per_category=3, sketches_per_photo=2, size=64, seed=3)


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "tiny"
    generate(root, TINY)
    return root


def test_category_names_are_many_sorted_and_sketchy_like() -> None:
    assert len(CATEGORY_NAMES) >= 24
    assert list(CATEGORY_NAMES) == sorted(set(CATEGORY_NAMES))
    assert all(re.fullmatch(r"[a-z][a-z_-]*[a-z]", name) for name in CATEGORY_NAMES)
    assert sum("-" in name for name in CATEGORY_NAMES) >= 2
    assert sum("-" in name for name in CATEGORY_NAMES[: SynthConfig().categories]) >= 2
    assert all("-" not in photo_id(name, 7) for name in CATEGORY_NAMES)


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    generate(tmp_path / "a", TINY)
    generate(tmp_path / "b", TINY)
    generate(tmp_path / "c", SynthConfig(**{**TINY.__dict__, "seed": 4}))
    first, second, other = (_files(tmp_path / name) for name in "abc")
    assert first and first == second
    assert first.keys() == other.keys()
    assert all(first[name] != other[name] for name in first)


def test_counts_and_layout(tiny: Path) -> None:
    report = generate(tiny.parent / "again", TINY)
    assert report.categories == CATEGORY_NAMES[: TINY.categories]
    assert (report.photos, report.sketches) == (12, 24)
    assert report.root == tiny.parent / "again"
    collection = scan(tiny)
    assert collection.warnings == []
    assert collection.categories == report.categories
    photos = [item for item in collection.items if item.domain == "photo"]
    sketches = [item for item in collection.items if item.domain == "sketch"]
    assert (len(photos), len(sketches)) == (12, 24)
    assert Counter(s.instance for s in sketches) == {p.instance: 2 for p in photos}
    for item in photos:
        assert item.path.startswith(f"photo/{SKETCHY_DEFAULT_VARIANT}/{item.category}/")
        assert item.path.endswith(".jpg")
        assert read_image(tiny / item.path).shape == (64, 64, 3)


def _pairs(root: Path) -> list[tuple[NDArray[np.uint8], NDArray[np.uint8]]]:
    collection = scan(root)
    photos = {i.instance: i for i in collection.items if i.domain == "photo"}
    return [
        (read_image(root / photos[item.instance].path), read_image(root / item.path))
        for item in collection.items
        if item.domain == "sketch"
    ]


def test_sketches_are_dark_lines_on_white_and_photos_are_colourful(tiny: Path) -> None:
    pairs = _pairs(tiny)
    for photo, sketch in pairs:
        assert sketch.mean() > 200
        assert photo.mean() < sketch.mean() - 40
        spread = sketch.max(axis=2).astype(int) - sketch.min(axis=2)
        assert spread.max() <= 2  # (near-)grayscale
        assert (sketch < 100).mean() > 0.005  # there is a drawing
        assert len(np.unique(photo.reshape(-1, 3), axis=0)) > 1000
        assert len(np.unique(sketch.reshape(-1, 3), axis=0)) <= 256
        photo_spread = photo.max(axis=2).astype(int) - photo.min(axis=2)
        assert photo_spread.mean() > 15  # coloured, not gray


def test_every_category_renders(tmp_path: Path) -> None:
    config = SynthConfig(len(CATEGORY_NAMES), 1, 1, size=48, seed=1)
    report = generate(tmp_path, config)
    assert report.categories == CATEGORY_NAMES
    collection = scan(tmp_path)
    assert collection.warnings == [] and collection.categories == CATEGORY_NAMES
    for item in collection.items:
        image = read_image(tmp_path / item.path)
        if item.domain == "sketch":
            assert (image < 160).any(axis=2).mean() > 0.01, item.path
        else:
            assert object_mask(config, item.category, 0).mean() > 0.05, item.path


def _outline(name: str, seed: int, size: int = 64) -> NDArray[np.bool_]:
    """Contours and strokes of one instance in the canonical pose, as a thick-line mask."""
    shape = draw(name, np.random.default_rng(seed))
    shape = shape.transformed(np.array([[0.45 * size, 0, size / 2], [0, 0.45 * size, size / 2]]))
    mask = np.zeros((size, size), np.uint8)
    lines = [(c, True) for part in shape.parts for c in part.contours]
    for points, closed in [*lines, *((s, False) for s in shape.strokes)]:
        cv2.polylines(mask, [np.round(points).astype(np.int32)], closed, 1, 3)
    return mask > 0


def _iou(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_categories_draw_different_things_and_instances_vary() -> None:
    references = {name: _outline(name, 0) for name in CATEGORY_NAMES}
    for k, a in enumerate(CATEGORY_NAMES):
        for b in CATEGORY_NAMES[k + 1 :]:
            assert _iou(references[a], references[b]) < 0.7, (a, b)
    correct = 0
    for name in CATEGORY_NAMES:
        query = _outline(name, 1)
        assert not np.array_equal(query, references[name]), f"{name}: instances do not vary"
        nearest = max(CATEGORY_NAMES, key=lambda other: _iou(query, references[other]))
        correct += nearest == name
    assert correct >= 0.9 * len(CATEGORY_NAMES)


def test_each_sketch_is_drawn_from_its_own_photo() -> None:
    config = SynthConfig(categories=6, photos_per_category=4, sketches_per_photo=2, size=96)
    own, other = [], []
    kernel = np.ones((7, 7), np.uint8)
    for name in CATEGORY_NAMES[: config.categories]:
        masks = [
            cv2.dilate(object_mask(config, name, i).astype(np.uint8), kernel) > 0
            for i in range(config.photos_per_category)
        ]
        for i in range(config.photos_per_category):
            for sketch in render_instance(config, name, i)[1]:
                ink = sketch < 128
                own.append(masks[i][ink].mean())
                other.extend(masks[j][ink].mean() for j in range(len(masks)) if j != i)
    assert np.mean(own) > 0.9
    assert np.mean(own) > np.mean(other) + 0.3


def test_written_files_match_render_instance(tiny: Path) -> None:
    name = CATEGORY_NAMES[1]
    photo, sketches = render_instance(TINY, name, 2)
    stem = photo_id(name, 2)
    written = read_image(tiny / "sketch" / SKETCHY_DEFAULT_VARIANT / name / f"{stem}-2.png")
    assert np.array_equal(written[:, :, 0], sketches[1])
    jpeg = read_image(tiny / "photo" / SKETCHY_DEFAULT_VARIANT / name / f"{stem}.jpg")
    assert np.abs(jpeg[:, :, ::-1].astype(int) - photo).mean() < 8


def test_refuses_to_overwrite_and_replaces_only_the_data_folders(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    generate(tmp_path, TINY)  # other files in the folder are no obstacle
    with pytest.raises(UsageError, match=r"already holds a data set; pass --overwrite"):
        generate(tmp_path, TINY)
    smaller = SynthConfig(categories=2, photos_per_category=1, sketches_per_photo=1, size=32)
    report = generate(tmp_path, smaller, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert scan(tmp_path).categories == report.categories == CATEGORY_NAMES[:2]
    assert len(list((tmp_path / "photo").rglob("*.jpg"))) == 2
    with pytest.raises(UsageError, match="not a directory"):
        generate(tmp_path / "notes.txt", smaller, overwrite=True)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (SynthConfig(categories=len(CATEGORY_NAMES) + 1), "at most"),
        (SynthConfig(categories=0), "--categories 0"),
        (SynthConfig(photos_per_category=0), "--photos-per-category 0"),
        (SynthConfig(sketches_per_photo=0), "--sketches-per-photo 0"),
        (SynthConfig(size=31), "--size 31"),
        (SynthConfig(seed=-1), "--seed -1"),
    ],
)
def test_bad_configs_are_usage_errors(tmp_path: Path, config: SynthConfig, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        generate(tmp_path / "out", config)
    assert not (tmp_path / "out").exists()


def test_contact_sheet(tmp_path: Path) -> None:
    root = tmp_path / "données ü"
    generate(root, SynthConfig(categories=3, photos_per_category=3, sketches_per_photo=3, size=40))
    out = write_contact_sheet(
        root, tmp_path / "sheets" / "sheet é.png", photos_per_category=2, cell=40
    )
    sheet = read_image(out)
    columns = 1 + 2 * (1 + 2)  # label, then 2 photos each with at most 2 sketches
    assert sheet.shape == (3 * 40 + 4 * GAP, columns * 40 + (columns + 1) * GAP, 3)
    assert (sheet[0, 0] == 255).all()
    assert sheet.mean() > 100


def test_contact_sheet_needs_photos(tmp_path: Path) -> None:
    for domain in ("photo", "sketch"):
        (tmp_path / domain / SKETCHY_DEFAULT_VARIANT).mkdir(parents=True)
    with pytest.raises(SketchsearchError, match=re.escape(str(tmp_path))):
        write_contact_sheet(tmp_path, tmp_path / "sheet.png")
