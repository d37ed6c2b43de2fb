"""Pseudo-sketches and stroke augmentations on real images: a photo, colour shapes, a drawing.

Oracles are computed independently of the module: the shapes' boundaries from their own
mask (a morphological gradient), the photo's edges from a Sobel magnitude, and the strokes
of a drawing counted with scikit-image's `label`.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data
import skimage.measure

from sketchsearch.data.errors import UsageError
from sketchsearch.train.sketch_augment import (
    StrokeAugment,
    change_thickness,
    drop_strokes,
    pseudo_sketch,
    stroke_augment,
    warp_elastic,
)

SIZE = 128
METHODS = ("xdog", "canny")
COLOURS = ((220, 30, 30), (30, 60, 200), (30, 150, 40))  # red, blue, green


def ink(image: np.ndarray) -> np.ndarray:
    """Dark pixels, from the mean of the channels (not the module's own grey conversion)."""
    return image.mean(axis=2) < 128


def stroke_count(image: np.ndarray) -> int:
    return int(skimage.measure.label(ink(image), connectivity=2).max())


@pytest.fixture(scope="module")
def shapes() -> tuple[np.ndarray, np.ndarray]:
    """Three filled colour shapes on white, and the mask of where they are."""
    image = np.full((SIZE, SIZE, 3), 255, np.uint8)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    triangle = np.array([[15, 115], [45, 70], [60, 118]], np.int32)
    for target, colours in ((image, COLOURS), (mask, (1, 1, 1))):
        cv2.circle(target, (40, 40), 22, colours[0], -1)
        cv2.rectangle(target, (70, 60), (115, 110), colours[1], -1)
        cv2.fillPoly(target, [triangle], colours[2])
    return image, mask.astype(bool)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return cv2.resize(skimage.data.astronaut(), (SIZE, SIZE), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def drawing() -> np.ndarray:
    """Ten separate anti-aliased strokes, 3 px wide, well inside the border."""
    image = np.full((SIZE, SIZE, 3), 255, np.uint8)
    black = (0, 0, 0)
    for x in (20, 45, 70, 95):
        cv2.line(image, (x, 15), (x + 10, 45), black, 3, cv2.LINE_AA)
    for centre in ((25, 80), (60, 80), (95, 80)):
        cv2.circle(image, centre, 10, black, 3, cv2.LINE_AA)
    cv2.ellipse(image, (40, 108), (15, 6), 0, 0, 360, black, 3, cv2.LINE_AA)
    zigzag = np.array([[70, 100], [85, 112], [100, 100], [112, 112]], np.int32)
    cv2.polylines(image, [zigzag], False, black, 3)
    cv2.rectangle(image, (116, 20), (118, 60), black, -1)
    return image


@pytest.fixture(scope="module")
def fine_drawing() -> np.ndarray:
    """1 px strokes: thinning them would erase everything."""
    image = np.full((64, 64, 3), 255, np.uint8)
    cv2.line(image, (10, 10), (50, 20), (0, 0, 0), 1)
    cv2.circle(image, (32, 40), 12, (0, 0, 0), 1)
    return image


def test_drawing_fixture_has_ten_strokes(drawing: np.ndarray) -> None:
    assert stroke_count(drawing) == 10


@pytest.mark.parametrize("method", METHODS)
def test_pseudo_sketch_of_shapes_draws_their_outlines(
    shapes: tuple[np.ndarray, np.ndarray], method: str
) -> None:
    image, mask = shapes
    sketch = pseudo_sketch(image, method=method)
    assert sketch.shape == image.shape and sketch.dtype == np.uint8
    assert (sketch[..., 0] == sketch[..., 1]).all() and (sketch[..., 1] == sketch[..., 2]).all()
    lines = ink(sketch)
    assert 0.02 < lines.mean() < 0.15  # mostly white, but there are lines
    boundary = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3)))
    near_boundary = cv2.dilate(boundary, np.ones((7, 7), np.uint8)) > 0
    assert lines[near_boundary].sum() >= 0.97 * lines.sum()  # ink lies on the outlines
    near_ink = cv2.dilate(lines.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    assert near_ink[boundary > 0].mean() > 0.9  # and the outlines are drawn all round


@pytest.mark.parametrize("method", METHODS)
def test_pseudo_sketch_of_a_photo_follows_its_edges(photo: np.ndarray, method: str) -> None:
    sketch = pseudo_sketch(photo, method=method)
    lines = ink(sketch)
    assert 0.05 < lines.mean() < 0.5
    grey = cv2.GaussianBlur(photo.mean(axis=2).astype(np.float32), (0, 0), 1.0)
    gradient = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    near_ink = cv2.dilate(lines.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert gradient[near_ink].mean() > 2.0 * gradient[~near_ink].mean()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("colour", [(0, 0, 0), (255, 255, 255), (10, 200, 90), (128, 128, 128)])
def test_pseudo_sketch_of_a_flat_image_is_white(method: str, colour: tuple[int, int, int]) -> None:
    flat = np.full((48, 64, 3), colour, np.uint8)
    for rng in (None, np.random.default_rng(0)):
        assert (pseudo_sketch(flat, rng, method=method) == 255).all()


@pytest.mark.parametrize("method", METHODS)
def test_pseudo_sketch_repeats_per_seed_and_varies_across_seeds(
    photo: np.ndarray, method: str
) -> None:
    assert np.array_equal(pseudo_sketch(photo, method=method), pseudo_sketch(photo, method=method))
    first = pseudo_sketch(photo, np.random.default_rng(3), method)
    assert np.array_equal(first, pseudo_sketch(photo, np.random.default_rng(3), method))
    others = [pseudo_sketch(photo, np.random.default_rng(seed), method) for seed in range(4, 8)]
    assert not all(np.array_equal(first, other) for other in others)


def test_xdog_jitter_changes_the_drawing_a_little(photo: np.ndarray) -> None:
    a = ink(pseudo_sketch(photo, np.random.default_rng(0)))
    b = ink(pseudo_sketch(photo, np.random.default_rng(1)))
    changed = (a ^ b).sum() / max(a.sum(), b.sum())
    assert 0.0 < changed < 0.5


def test_pseudo_sketch_refuses_unknown_methods_and_non_rgb_arrays(photo: np.ndarray) -> None:
    with pytest.raises(UsageError, match="'xdog' or 'canny'"):
        pseudo_sketch(photo, method="sobel")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="HxWx3 uint8"):
        pseudo_sketch(photo[..., 0])
    with pytest.raises(UsageError, match="HxWx3 uint8"):
        pseudo_sketch(photo.astype(np.float32))


@pytest.mark.parametrize("seed", range(8))
def test_dropout_erases_some_strokes_but_not_all(drawing: np.ndarray, seed: int) -> None:
    before = stroke_count(drawing)
    out = drop_strokes(drawing, np.random.default_rng(seed), max_fraction=0.3)
    after = stroke_count(out)
    assert before - 3 <= after < before  # between 1 and 30% of the ten strokes go
    kept = ink(out)
    assert not (kept & ~ink(drawing)).any()  # nothing new is drawn
    assert np.array_equal(out[kept], drawing[kept])  # and kept strokes are untouched
    faint = (out < 255).any(axis=2) & ~kept
    assert not (faint & ~cv2.dilate(kept.astype(np.uint8), np.ones((3, 3)))).any()  # no ghosts


def test_dropout_never_erases_the_last_stroke(drawing: np.ndarray) -> None:
    two = np.full_like(drawing, 255)
    cv2.line(two, (10, 10), (60, 10), (0, 0, 0), 3)
    cv2.line(two, (10, 60), (60, 60), (0, 0, 0), 3)
    one = two.copy()
    one[40:] = 255
    for seed in range(10):
        rng = np.random.default_rng(seed)
        assert stroke_count(drop_strokes(two, rng, max_fraction=1.0)) == 1
        assert np.array_equal(drop_strokes(one, rng, max_fraction=1.0), one)


def test_dropout_leaves_a_close_neighbour_intact() -> None:
    lines = [np.full((40, 60, 3), 255, np.uint8) for _ in range(2)]
    cv2.rectangle(lines[0], (10, 14), (50, 16), (0, 0, 0), -1)  # rows 14-16
    cv2.rectangle(lines[1], (10, 18), (50, 20), (0, 0, 0), -1)  # rows 18-20: a 1 px gap
    both = np.minimum(lines[0], lines[1])
    assert stroke_count(both) == 2
    for seed in range(6):
        out = drop_strokes(both, np.random.default_rng(seed), max_fraction=1.0)
        assert any(np.array_equal(ink(out), ink(line)) for line in lines)


def test_thickness_dilation_adds_ink_and_erosion_removes_it(drawing: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    amount = ink(drawing).mean()
    assert ink(change_thickness(drawing, rng, thicker=True)).mean() > 1.3 * amount
    thinner = ink(change_thickness(drawing, rng, thicker=False)).mean()
    assert 0.0 < thinner < 0.8 * amount


def test_thinning_that_would_erase_fine_strokes_is_skipped(fine_drawing: np.ndarray) -> None:
    out = change_thickness(fine_drawing, np.random.default_rng(0), thicker=False)
    assert np.array_equal(out, fine_drawing)


def test_thickness_goes_both_ways_across_seeds(drawing: np.ndarray) -> None:
    only_thickness = StrokeAugment(thickness_p=1.0, dropout_p=0.0, elastic_p=0.0)
    amount = ink(drawing).sum()
    changes = {
        np.sign(ink(only_thickness(drawing, np.random.default_rng(seed))).sum() - amount)
        for seed in range(10)
    }
    assert changes == {-1, 1}


@pytest.mark.parametrize("seed", range(5))
def test_elastic_moves_ink_by_a_few_pixels_and_keeps_its_amount(
    drawing: np.ndarray, seed: int
) -> None:
    out = warp_elastic(drawing, np.random.default_rng(seed), alpha=3.0, sigma=8.0)
    before, after = ink(drawing), ink(out)
    assert 0.7 * before.sum() <= after.sum() <= 1.3 * before.sum()
    assert (before ^ after).sum() > 0.1 * before.sum()  # the ink moved
    reach = cv2.dilate(before.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    assert not (after & ~reach).any()  # but by no more than alpha (+ interpolation)
    border = np.ones(out.shape[:2], bool)
    border[3:-3, 3:-3] = False
    assert (out[border] == 255).all()


def test_elastic_never_pushes_all_ink_out_of_the_frame() -> None:
    corner = np.full((32, 32, 3), 255, np.uint8)
    corner[:2, :2] = 0
    for seed in range(20):
        assert ink(warp_elastic(corner, np.random.default_rng(seed), alpha=6.0)).any()


@pytest.mark.parametrize("image_name", ["drawing", "fine_drawing"])
def test_stroke_augment_never_returns_a_blank_drawing(
    image_name: str, request: pytest.FixtureRequest
) -> None:
    image = request.getfixturevalue(image_name)
    original = image.copy()
    everything = StrokeAugment(thickness_p=1.0, dropout_p=1.0, elastic_p=1.0)
    for seed in range(30):
        out = everything(image, np.random.default_rng(seed))
        assert out.shape == image.shape and out.dtype == np.uint8
        assert ink(out).any()
    assert np.array_equal(image, original)  # the input is never written to


def test_stroke_augment_repeats_per_seed_and_varies_across_seeds(drawing: np.ndarray) -> None:
    first = stroke_augment(drawing, np.random.default_rng(11))
    assert np.array_equal(first, stroke_augment(drawing, np.random.default_rng(11)))
    others = [stroke_augment(drawing, np.random.default_rng(seed)) for seed in range(5)]
    assert not all(np.array_equal(first, other) for other in others)


def test_stroke_augment_with_zero_probabilities_is_the_identity(drawing: np.ndarray) -> None:
    out = stroke_augment(drawing, np.random.default_rng(0), thickness=0, dropout=0, elastic=0)
    assert np.array_equal(out, drawing) and out is not drawing


def test_stroke_augment_of_a_blank_page_stays_blank() -> None:
    blank = np.full((32, 32, 3), 255, np.uint8)
    everything = StrokeAugment(thickness_p=1.0, dropout_p=1.0, elastic_p=1.0)
    assert (everything(blank, np.random.default_rng(0)) == 255).all()


@pytest.mark.parametrize(
    ("field", "value"), [("dropout_p", 1.5), ("thickness_p", -0.1), ("elastic_alpha", 0.0)]
)
def test_stroke_augment_refuses_out_of_range_settings(field: str, value: float) -> None:
    with pytest.raises(UsageError, match=field):
        StrokeAugment(**{field: value})
