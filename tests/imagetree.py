"""Helpers that write tiny real image files for tests (importable: tests/ is on pythonpath)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

VARIANT = "tx_000000000000"


def encode(image: np.ndarray, ext: str) -> bytes:
    ok, buffer = cv2.imencode(ext, image)
    if not ok:
        raise RuntimeError(f"cannot encode {ext}")
    return buffer.tobytes()


def write_image(path: Path, seed: int = 0, size: int = 16) -> Path:
    """A small random colour image in the format the extension names."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(image, path.suffix))
    return path


def uniform_spec(categories: int, photos: int, sketches: int) -> dict[str, dict[str, int]]:
    return {
        f"cat{c:02d}": {f"c{c:02d}p{p:03d}": sketches for p in range(photos)}
        for c in range(categories)
    }
