"""A hand-made engine: an image's embedding is its unit-length mean RGB colour.

Every score, ranking and metric computed with it can be worked out by hand, so tests of the
pipeline, evaluation and ROC use it where a real model's output would be unknowable.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from sketchsearch.runtime.engines.lifecycle import EngineLifecycle
from sketchsearch.runtime.engines.protocol import check_batch
from sketchsearch.runtime.model_card import ModelCard
from sketchsearch.runtime.preprocess import PreprocessConfig


class ColourEngine(EngineLifecycle):
    """The Engine protocol in full: ``with``, ``close()`` and a no-op ``synchronize()``."""

    backend = "colour"
    device = "cpu"

    def __init__(self) -> None:
        self.path = Path("colour.engine")
        self.card = ModelCard(
            backbone="mean-colour",
            embed_dim=3,
            preprocess=PreprocessConfig(input_size=8, crop_pct=1.0, interpolation="bilinear"),
            class_names=("red", "green", "blue"),
            family="c" * 64,
            checkpoint_sha256="c" * 64,
        )
        self.batches: list[int] = []

    def embed(self, images: np.ndarray) -> np.ndarray:
        self._require_open()
        check_batch(images, self.card, self.path)
        self.batches.append(len(images))
        mean = images.reshape(len(images), -1, 3).mean(axis=1).astype(np.float32)
        return mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-6)

    def warmup(self, iterations: int = 2) -> None:
        pass


def solid(path: Path, rgb: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((8, 8, 3), rgb[::-1], np.uint8))
    return path
