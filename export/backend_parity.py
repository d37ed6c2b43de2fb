"""Parity between backends: another backend must embed a model as onnxruntime does.

onnxruntime is the reference (it runs the ``.onnx`` that export verified against the
checkpoint); the candidate is the same file, or a conversion of it (an OpenVINO IR), opened
through the backend table. Both get the same uint8 batch of real photos prepared by
``runtime.preprocess``, so the check covers the graph and nothing else: the cosine of every
image's two embeddings must reach 0.9999 for fp32 and fp16 files (the same float arithmetic
on both sides). An int8 file is held to the bar its export met against the checkpoint
(``verify.THRESHOLDS``, 0.98): each backend runs the quantized graph with its own int8
kernels and rounding (measured on the demo resnet10t int8 export: cosine min 0.99797 over
scikit-image's photos), so 0.9999 would refuse a file both backends run correctly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sketchsearch.data.errors import UsageError
from sketchsearch.export.verify import THRESHOLDS, VerificationError, load_images
from sketchsearch.runtime.engines.recommendation import PARITY_COSINE
from sketchsearch.runtime.engines.table import open_engine
from sketchsearch.runtime.model_card import ModelCard
from sketchsearch.runtime.preprocess import preprocess_array

MIN_COSINE = PARITY_COSINE  # fp32 and fp16 files (and what a backend recommendation needs)
# Photos that ship inside scikit-image (no download): people, food, animals, objects, scenes.
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "cat")


@dataclass(frozen=True)
class ParityReport:
    """How close ``candidate`` on ``backend`` came to onnxruntime on ``reference``."""

    reference: str
    candidate: str
    backend: str
    images: int
    images_source: str
    min_cosine: float
    mean_cosine: float
    threshold: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        mark = "✓" if self.passed else "x"
        return (
            f"-[{mark}] {self.backend} vs onnxruntime: cosine min {self.min_cosine:.6f} mean "
            f"{self.mean_cosine:.6f} on {self.images} images ({self.images_source}); "
            f"needs >= {self.threshold}"
        )


def parity_images(card: ModelCard, folder: Path | None = None) -> tuple[np.ndarray, str]:
    """A uint8 batch for ``card``: the images in ``folder``, else scikit-image's photos."""
    if folder is not None:
        from sketchsearch.export.images import folder_images

        batch, _ = load_images(folder_images(folder), card.preprocess)
        if len(batch) == 0:
            raise UsageError(f"--images {folder}: no image could be read")
        return batch, str(folder)
    try:
        import skimage.data
    except ImportError:
        raise UsageError(
            "no images to compare backends on: pass --images DIR, or install scikit-image "
            "(its sample photos are used)"
        ) from None
    photos = [
        preprocess_array(getattr(skimage.data, name)(), card.preprocess) for name in SKIMAGE_PHOTOS
    ]
    return np.stack(photos), f"scikit-image photos: {', '.join(SKIMAGE_PHOTOS)}"


def check_parity(
    reference: Path,
    candidate: Path,
    backend: str,
    images: Path | None = None,
    threads: int | None = None,
) -> ParityReport:
    """``candidate`` on ``backend`` against ``reference`` (an ``.onnx``) on onnxruntime's CPU.

    A ``candidate`` whose card takes another input size or gives another embedding size is
    not a conversion of ``reference``: a UsageError, before anything is embedded.
    """
    if reference.suffix.lower() != ".onnx":
        raise UsageError(
            f"--onnx {reference}: the reference is the .onnx file that onnxruntime runs "
            "(from `sketchsearch export onnx`)"
        )
    with open_engine(reference, provider="cpu", threads=threads, backend="onnxruntime") as ort:
        batch, source = parity_images(ort.card, images)
        expected = ort.embed(batch)
        threshold = min_cosine(ort.card.precision)
    with open_engine(candidate, threads=threads, backend=backend) as engine:
        _same_shapes(ort.card, engine.card, reference, candidate)
        found = engine.embed(batch)
    cosines = cosine_rows(expected, found)
    low = float(cosines.min())
    return ParityReport(
        reference=str(reference),
        candidate=str(candidate),
        backend=backend,
        images=len(batch),
        images_source=source,
        min_cosine=round(low, 7),
        mean_cosine=round(float(cosines.mean()), 7),
        threshold=threshold,
        passed=bool(np.isfinite(cosines).all() and low >= threshold),
    )


def _same_shapes(expected: ModelCard, found: ModelCard, reference: Path, candidate: Path) -> None:
    """Both cards take the same images and give embeddings of the same size."""
    wanted = (expected.input_size, expected.embed_dim)
    got = (found.input_size, found.embed_dim)
    if got != wanted:
        raise UsageError(
            f"{candidate} is not a conversion of {reference}: it takes {got[0]} px images and "
            f"gives {got[1]}-d embeddings, {reference.name} {wanted[0]} px and {wanted[1]}-d"
        )


def min_cosine(precision: str) -> float:
    """The parity bar for a file of ``precision``: 0.9999, or int8's export bar."""
    return THRESHOLDS["int8"][0] if precision == "int8" else MIN_COSINE


def require_parity(report: ParityReport) -> ParityReport:
    """``report``, or a VerificationError naming both files when it failed."""
    if not report.passed:
        raise VerificationError(
            f"{report.candidate}: {report.backend} does not embed as onnxruntime does on "
            f"{report.reference} (cosine min {report.min_cosine:.6f} < {report.threshold}); "
            "report this with both files"
        )
    return report


def cosine_rows(a: np.ndarray, b: Sequence[Any] | np.ndarray) -> np.ndarray:
    """The cosine of each row of ``a`` with the same row of ``b``."""
    b = np.asarray(b, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray((a * b).sum(axis=1) / norms)
