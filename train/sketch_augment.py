"""Query-domain augmentations for line art: pseudo-sketches of colour images, stroke jitter.

Sketch data sets are small next to photo collections, and a sketch differs from its photo
in ways a photo augmentation never shows: no colour, no texture, lines of varying width,
missing strokes, a wobbly hand. `pseudo_sketch` turns a gallery image into a line drawing,
so every gallery image can also serve as a query paired with its own source, and the model
learns colour → line-art invariance on far more pairs. `StrokeAugment` perturbs the strokes
of a drawing the way different people would draw it.

Pure numpy/OpenCV on HxWx3 uint8 RGB arrays (dark ink on white), so it runs inside a
Dataset before the tensor conversion. All randomness comes from a passed
`numpy.random.Generator`, so a (seed, epoch, index) generator repeats a run exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from sketchsearch.data.errors import UsageError

WHITE = 255
INK_BELOW = 128  # a pixel whose grey value is below this is ink
SketchMethod = Literal["xdog", "canny"]

# XDoG (Winnemöller et al. 2012, "XDoG: An eXtended difference-of-Gaussians compendium"),
# in its edge form D = G(σ) − τ·G(kσ) on grey in [0, 1]: τ < 1 makes D ≥ 0 on any flat
# area, so a threshold ε < 0 keeps flat areas (of any colour) white and draws ink only on
# the dark side of an edge. φ sets how sharp the soft threshold 1 + tanh(φ(D − ε)) is.
XDOG_SIGMA = 1.0
XDOG_K = 1.6
XDOG_TAU = 0.98
XDOG_EPSILON = -0.01
XDOG_PHI = 200.0
# Per-call jitter when a generator is given: σ × U(1 ± 0.15), ε + U(± 0.003).
XDOG_SIGMA_JITTER = 0.15
XDOG_EPSILON_JITTER = 0.003
# Canny's thresholds at (1 ± s) × median grey (the usual "auto Canny"), s jittered ± 0.1.
CANNY_SPREAD = 0.33
CANNY_SPREAD_JITTER = 0.1

# Thinning that keeps less than this share of the ink is undone: thin strokes would vanish.
MIN_INK_KEPT_BY_THINNING = 0.25
_KERNEL = np.ones((3, 3), np.uint8)


def pseudo_sketch(
    image: np.ndarray,
    rng: np.random.Generator | None = None,
    method: SketchMethod = "xdog",
) -> np.ndarray:
    """A line drawing of a colour image: black lines on white, RGB uint8, same size.

    "xdog" draws soft lines on the dark side of edges; "canny" draws binary 1-2 px edges.
    With `rng`, the filter parameters (and the Canny line width) vary slightly from call
    to call, so each epoch sees a slightly different drawing; without it, the output is
    fixed. A flat image has no edges and gives an all-white drawing.
    """
    _check_image(image)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if method == "xdog":
        lines = _xdog(grey, rng)
    elif method == "canny":
        lines = _canny(grey, rng)
    else:
        raise UsageError(f"pseudo_sketch method must be 'xdog' or 'canny', not {method!r}")
    return cv2.cvtColor(lines, cv2.COLOR_GRAY2RGB)


def _xdog(grey: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    sigma, epsilon = XDOG_SIGMA, XDOG_EPSILON
    if rng is not None:
        sigma *= 1.0 + rng.uniform(-XDOG_SIGMA_JITTER, XDOG_SIGMA_JITTER)
        epsilon += rng.uniform(-XDOG_EPSILON_JITTER, XDOG_EPSILON_JITTER)
    values = grey.astype(np.float32) / 255.0
    fine = cv2.GaussianBlur(values, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    coarse = cv2.GaussianBlur(values, (0, 0), sigma * XDOG_K, borderType=cv2.BORDER_REPLICATE)
    dog = fine - XDOG_TAU * coarse
    soft = np.where(dog >= epsilon, 1.0, 1.0 + np.tanh(XDOG_PHI * (dog - epsilon)))
    return np.clip(np.rint(soft * 255.0), 0, 255).astype(np.uint8)


def _canny(grey: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    spread, width = CANNY_SPREAD, 2
    if rng is not None:
        spread += rng.uniform(-CANNY_SPREAD_JITTER, CANNY_SPREAD_JITTER)
        width = int(rng.integers(1, 3))
    median = float(np.median(grey))
    low = max(0.0, (1.0 - spread) * median)
    high = min(255.0, (1.0 + spread) * median)
    smooth = cv2.GaussianBlur(grey, (3, 3), 0)
    edges = cv2.Canny(smooth, low, high)
    if width > 1:
        edges = cv2.dilate(edges, np.ones((width, width), np.uint8))
    return np.where(edges > 0, 0, WHITE).astype(np.uint8)


@dataclass(frozen=True)
class StrokeAugment:
    """Random changes to the strokes of a line drawing, each applied with a probability.

    thickness: erode or dilate the ink once with a 3x3 kernel (a finer or a heavier pen).
    dropout: erase up to `dropout_max_fraction` of the connected strokes, never all (an
        unfinished drawing); a drawing with fewer than 1 / fraction strokes keeps them all.
    elastic: warp with a smooth random field of at most `elastic_alpha` px whose
        smoothness is `elastic_sigma` px (a wobbly hand); the border stays white.
    """

    thickness_p: float = 0.5
    dropout_p: float = 0.5
    dropout_max_fraction: float = 0.3
    elastic_p: float = 0.5
    elastic_alpha: float = 3.0
    elastic_sigma: float = 8.0

    def __post_init__(self) -> None:
        for name in ("thickness_p", "dropout_p", "dropout_max_fraction", "elastic_p"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UsageError(f"StrokeAugment.{name} must be in [0, 1], got {value}")
        for name in ("elastic_alpha", "elastic_sigma"):
            value = getattr(self, name)
            if value <= 0.0:
                raise UsageError(f"StrokeAugment.{name} must be > 0 px, got {value}")

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The augmented drawing, a new array; it keeps some ink if the input had any."""
        _check_image(image)
        out = image
        if rng.random() < self.thickness_p:
            out = change_thickness(out, rng)
        if rng.random() < self.dropout_p:
            out = drop_strokes(out, rng, self.dropout_max_fraction)
        if rng.random() < self.elastic_p:
            out = warp_elastic(out, rng, self.elastic_alpha, self.elastic_sigma)
        return out.copy() if out is image else out


def stroke_augment(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    thickness: float = 0.5,
    dropout: float = 0.5,
    elastic: float = 0.5,
) -> np.ndarray:
    """`StrokeAugment` with the given probabilities and default magnitudes, applied once."""
    config = StrokeAugment(thickness_p=thickness, dropout_p=dropout, elastic_p=elastic)
    return config(image, rng)


def change_thickness(
    image: np.ndarray, rng: np.random.Generator, thicker: bool | None = None
) -> np.ndarray:
    """Ink one pixel heavier or lighter (3x3, one iteration); `thicker=None` draws which.

    Ink is dark, so thickening is a minimum filter (cv2.erode) of the image. Thinning that
    would leave under a quarter of the ink (strokes 1-2 px wide) returns a copy of the input.
    """
    if thicker is None:
        thicker = bool(rng.random() < 0.5)
    if thicker:
        return cv2.erode(image, _KERNEL)
    thinned = cv2.dilate(image, _KERNEL)
    if ink_mask(thinned).sum() < MIN_INK_KEPT_BY_THINNING * ink_mask(image).sum():
        return image.copy()
    return thinned


def drop_strokes(
    image: np.ndarray, rng: np.random.Generator, max_fraction: float = 0.3
) -> np.ndarray:
    """Paint white between 1 and `max_fraction` of the ink's connected components.

    At most all but one component goes, so ink always remains. Components are 8-connected
    runs of ink (`ink_mask`), so a stroke with gaps counts as several.
    """
    count, labels = cv2.connectedComponents(ink_mask(image).astype(np.uint8), connectivity=8)
    strokes = count - 1  # label 0 is the background
    most = min(int(max_fraction * strokes), strokes - 1)
    if most < 1:
        return image.copy()
    dropped = rng.choice(np.arange(1, count), size=int(rng.integers(1, most + 1)), replace=False)
    # One pixel more takes the anti-aliased fringe too; it cannot reach a kept stroke's
    # ink, which would then touch the dropped stroke and be part of the same component.
    erase = cv2.dilate(np.isin(labels, dropped).astype(np.uint8), _KERNEL) > 0
    out = image.copy()
    out[erase] = WHITE
    return out


def warp_elastic(
    image: np.ndarray, rng: np.random.Generator, alpha: float = 3.0, sigma: float = 8.0
) -> np.ndarray:
    """Move pixels by a smooth random field of at most `alpha` px; the border fills white.

    The field is Gaussian-blurred uniform noise (Simard et al. 2003) scaled so its largest
    displacement is `alpha`: the magnitude does not depend on `sigma` or the image size.
    """
    height, width = image.shape[:2]
    grid_y, grid_x = np.mgrid[0:height, 0:width].astype(np.float32)
    shifts = []
    for _ in range(2):
        noise = rng.uniform(-1.0, 1.0, size=(height, width)).astype(np.float32)
        field = cv2.GaussianBlur(noise, (0, 0), sigma)
        shifts.append(field * (alpha / max(float(np.abs(field).max()), 1e-12)))
    warped = cv2.remap(
        image,
        grid_x + shifts[0],
        grid_y + shifts[1],
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(WHITE, WHITE, WHITE),
    )
    return warped if ink_mask(warped).any() or not ink_mask(image).any() else image.copy()


def ink_mask(image: np.ndarray) -> np.ndarray:
    """Boolean HxW mask of the ink: pixels whose grey value is below `INK_BELOW`."""
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) < INK_BELOW


def _check_image(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise UsageError(
            f"expected an HxWx3 uint8 RGB array, got shape {image.shape} of {image.dtype}: "
            "convert it first (e.g. cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) for grey)"
        )
