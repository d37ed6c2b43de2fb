"""Reading image files: format sniffing, integrity checks and decoding to RGB uint8.

Decoding lives in the data layer because scanning with ``verify`` must know whether a file
is usable; the runtime's preprocessing decodes through the same function, so a file that
passes verification here is a file the runtime can read.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from sketchsearch.data.errors import ImageDecodeError, UsageError
from sketchsearch.data.regular_file import read_regular_file

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def has_image_extension(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def sniff_format(head: bytes) -> str | None:
    """The image format named by the file's first bytes, or None when it is not an image."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return name
    return None


def _describe_non_image(head: bytes) -> str:
    sample = head[:64]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        return "not an image: no JPEG, PNG, WebP, BMP or TIFF signature"
    if text.isprintable() or all(c.isprintable() or c.isspace() for c in text):
        return f"not an image: it holds text ({text[:24].strip()!r}…)"
    return "not an image: no JPEG, PNG, WebP, BMP or TIFF signature"


def _truncation_problem(fmt: str, data: bytes) -> str | None:
    """Truncated files often still decode partially, so look for the end marker instead."""
    if fmt == "JPEG" and b"\xff\xd9" not in data[-1024:]:
        return "truncated JPEG: the end-of-image marker is missing"
    if fmt == "PNG" and b"IEND" not in data[-64:]:
        return "truncated PNG: the IEND chunk is missing"
    return None


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The file's bytes; a FIFO, device, socket or directory is refused without blocking."""
    return read_regular_file(path)


def decode_image(data: bytes, path: str | os.PathLike[str] = "<bytes>") -> np.ndarray:
    """Decode to an RGB uint8 HxWx3 array, or raise ImageDecodeError naming ``path``.

    Grayscale becomes RGB, 16-bit is scaled to 8-bit, and alpha is composited on white
    (sketches are often black strokes on a transparent background). JPEGs are decoded with
    EXIF orientation applied.
    """
    if not data:
        raise ImageDecodeError(path, "empty file (0 bytes)")
    fmt = sniff_format(data[:16])
    if fmt is None:
        raise ImageDecodeError(path, _describe_non_image(data))
    problem = _truncation_problem(fmt, data)
    if problem:
        raise ImageDecodeError(path, problem)
    buffer = np.frombuffer(data, dtype=np.uint8)
    # IMREAD_COLOR applies EXIF orientation; IMREAD_UNCHANGED keeps alpha and 16 bits.
    flags = cv2.IMREAD_COLOR if fmt == "JPEG" else cv2.IMREAD_UNCHANGED
    image = cv2.imdecode(buffer, flags)
    if image is None or image.size == 0:
        raise ImageDecodeError(path, f"corrupt {fmt}: the decoder cannot read it")
    return _to_rgb8(image)


def image_files(
    folder: str | os.PathLike[str], option: str, require_any: bool = True
) -> list[Path]:
    """Every image file below ``folder`` (by extension), sorted, symlinks as listed;
    ``option`` names the command-line option in the error for a missing or empty folder."""
    base = Path(folder)
    if not base.is_dir():
        raise UsageError(f"{option} {base}: not a folder")
    found = sorted(
        p for p in base.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
    )
    if require_any and not found:
        raise UsageError(f"{option} {base}: holds no image files")
    return found


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read and decode an image file (works with any unicode path)."""
    return decode_image(read_bytes(path), path)


def check_image_file(path: str | os.PathLike[str]) -> str | None:
    """The problem that makes ``path`` unusable as an image, or None when it decodes."""
    try:
        read_image(path)
    except ImageDecodeError as err:
        return err.problem
    return None


def _to_rgb8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif image.dtype != np.uint8:  # float or 32-bit TIFF: stretch its range to 0..255
        low, high = float(image.min()), float(image.max())
        scaled = (image.astype(np.float64) - low) * (255.0 / ((high - low) or 1.0))
        image = np.round(scaled).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == 4:
        return _composite_on_white(image)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _composite_on_white(bgra: np.ndarray) -> np.ndarray:
    alpha = bgra[:, :, 3:4].astype(np.float32) / 255.0
    bgr = bgra[:, :, :3].astype(np.float32)
    blended = bgr * alpha + 255.0 * (1.0 - alpha)
    return np.asarray(cv2.cvtColor(np.round(blended).astype(np.uint8), cv2.COLOR_BGR2RGB))
