"""Reading image files: format sniffing, integrity checks and decoding to RGB uint8.

Decoding lives in the data layer because scanning with ``verify`` must know whether a file
is usable; the runtime's preprocessing decodes through the same function, so a file that
passes verification here is a file the runtime can read.

Memory is bounded before the decoder runs: the file size by :mod:`regular_file`, the pixel
count from the header (:mod:`image_header`) for every format accepted here. A format we
cannot size from its header is not accepted at all, even where OpenCV could decode it (PNM,
GIF, JPEG 2000, OpenEXR, Radiance HDR, Sun raster, PFM): it would be decoded unbounded.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from sketchsearch.data.errors import ImageDecodeError, UsageError
from sketchsearch.data.image_header import image_size
from sketchsearch.data.regular_file import read_regular_file

# 100 megapixels: a 100 MP medium-format photo decodes to 300 MB of RGB; more is a bomb.
DEFAULT_MAX_PIXELS = 100_000_000
SUPPORTED_FORMATS = "JPEG, PNG, WebP, BMP or TIFF"
# JPEG's DCT can decode at 1/2, 1/4 or 1/8 of the size for little more than the small image.
_REDUCED_FLAGS = {
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}
_BLOCK_PIXELS = 1 << 18  # pixel conversions run in blocks of rows of about this many pixels
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
        return f"not an image: no {SUPPORTED_FORMATS} signature"
    if text.isprintable() or all(c.isprintable() or c.isspace() for c in text):
        return f"not an image: it holds text ({text[:24].strip()!r}…)"
    return f"not an image: no {SUPPORTED_FORMATS} signature"


def _truncation_problem(fmt: str, data: bytes) -> str | None:
    """Truncated files often still decode partially, so look for the end marker instead."""
    if fmt == "JPEG" and b"\xff\xd9" not in data[-1024:]:
        return "truncated JPEG: the end-of-image marker is missing"
    if fmt == "PNG" and b"IEND" not in data[-64:]:
        return "truncated PNG: the IEND chunk is missing"
    return None


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The file's bytes; a FIFO, device, socket or directory is refused without blocking,
    a file over the size limit before reading, and one without an image signature after
    reading only its first bytes."""

    def check_head(head: bytes) -> None:
        if not head:
            raise ImageDecodeError(path, "empty file (0 bytes)")
        if sniff_format(head) is None:
            raise ImageDecodeError(path, _describe_non_image(head))

    return read_regular_file(path, check_head=check_head)


def image_dimensions(
    data: bytes, path: str | os.PathLike[str] = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[str, int, int]:
    """``(format, width, height)`` from the header, once the file may be decoded.

    Refused here, without decoding: an empty file, one that is not an image, a truncated
    one, one whose header gives no size, and one of more than ``max_pixels`` pixels.
    """
    if not data:
        raise ImageDecodeError(path, "empty file (0 bytes)")
    fmt = sniff_format(data[:16])
    if fmt is None:
        raise ImageDecodeError(path, _describe_non_image(data))
    problem = _truncation_problem(fmt, data)
    if problem:
        raise ImageDecodeError(path, problem)
    size = image_size(data)
    if size is None:
        raise ImageDecodeError(
            path, f"corrupt {fmt}: its header gives no image size, so it is not decoded"
        )
    check_pixels(path, *size, max_pixels)
    return fmt, *size


def check_pixels(path: object, width: int, height: int, max_pixels: int) -> None:
    """Refuse an image of more than ``max_pixels`` pixels (a decompression bomb)."""
    if width * height > max_pixels:
        raise ImageDecodeError(
            path,
            f"decompression bomb: {width}×{height} pixels, "
            f"more than the limit of {max_pixels} (max_pixels)",
        )


def decode_image(
    data: bytes,
    path: str | os.PathLike[str] = "<bytes>",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    reduce: int = 1,
) -> np.ndarray:
    """Decode to an RGB uint8 HxWx3 array, or raise ImageDecodeError naming ``path``.

    The pixel count is checked from the header first (:func:`image_dimensions`). Grayscale
    becomes RGB, 16-bit is scaled to 8-bit, and alpha is composited on white (sketches are
    often black strokes on a transparent background). JPEGs are decoded with EXIF orientation
    applied, and at 1/``reduce`` of the size (2, 4 or 8; about ``ceil(side / reduce)``) when
    asked: the caller shrinks them anyway, and the full image is never held.
    """
    return decode_checked(data, image_dimensions(data, path, max_pixels)[0], path, reduce)


def decode_checked(
    data: bytes, fmt: str, path: str | os.PathLike[str] = "<bytes>", reduce: int = 1
) -> np.ndarray:
    """:func:`decode_image` of bytes that :func:`image_dimensions` has passed as ``fmt``:
    its checks are not repeated (reading the header twice cost a few per cent of a small
    JPEG's decoding in `gallery build`)."""
    # IMREAD_COLOR applies EXIF orientation; IMREAD_UNCHANGED keeps alpha and 16 bits.
    flags = cv2.IMREAD_COLOR if fmt == "JPEG" else cv2.IMREAD_UNCHANGED
    if reduce != 1:
        if fmt != "JPEG" or reduce not in _REDUCED_FLAGS:
            raise ValueError(f"reduced decoding is for JPEG by 2, 4 or 8, not {fmt} by {reduce}")
        flags = _REDUCED_FLAGS[reduce]
    # No name holds the decoded image here, so that _to_rgb8 can drop it once converted.
    return _to_rgb8(_imdecode(data, flags, path, fmt))


def _imdecode(data: bytes, flags: int, path: str | os.PathLike[str], fmt: str) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if image is None or image.size == 0:
        raise ImageDecodeError(path, f"corrupt {fmt}: the decoder cannot read it")
    return image


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
    """RGB uint8 from what OpenCV decoded (BGR or BGRA, grey, 8 or 16 bits, float).

    Each step drops its input when it returns, and works in blocks of rows, so that a
    100-megapixel 16-bit RGBA image never has more than itself and the 8-bit result in
    memory (whole-image float temporaries once took 5.7 GB).
    """
    if image.dtype != np.uint8:
        image = _to_8bit(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_GRAY2RGB))
    if image.shape[2] == 4:
        image = _composite_on_white(image)
    return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image))  # in place


def _row_blocks(image: np.ndarray) -> list[slice]:
    rows = max(1, _BLOCK_PIXELS // max(1, image.shape[1]))
    return [slice(top, top + rows) for top in range(0, image.shape[0], rows)]


def _to_8bit(image: np.ndarray) -> np.ndarray:
    """16 bits scaled with rounding; float or 32-bit (TIFF) stretched from its range to 0..255."""
    out = np.empty(image.shape, np.uint8)
    if image.dtype == np.uint16:
        for rows in _row_blocks(image):
            out[rows] = (image[rows].astype(np.uint32) * 255 + 32767) // 65535
        return out
    low, high = float(image.min()), float(image.max())
    scale = 255.0 / ((high - low) or 1.0)
    for rows in _row_blocks(image):
        out[rows] = np.round((image[rows].astype(np.float64) - low) * scale)
    return out


def _composite_on_white(bgra: np.ndarray) -> np.ndarray:
    """BGR uint8: alpha blended on white, block by block."""
    out = np.empty((*bgra.shape[:2], 3), np.uint8)
    for rows in _row_blocks(bgra):
        alpha = bgra[rows, :, 3:4].astype(np.float32) / 255.0
        blended = bgra[rows, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        out[rows] = np.round(blended)
    return out
