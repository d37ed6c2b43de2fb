from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from imagetree import encode, write_image

from sketchsearch.data.errors import ExitCode, ImageDecodeError
from sketchsearch.data.imagefile import check_image_file, read_image, sniff_format


def test_reads_jpeg_png_webp_bmp_as_rgb(tmp_path: Path) -> None:
    bgr = np.zeros((8, 8, 3), np.uint8)
    bgr[..., 2] = 200  # red in BGR
    for ext in (".png", ".webp", ".bmp", ".jpg"):
        path = tmp_path / f"red{ext}"
        path.write_bytes(encode(bgr, ext if ext != ".webp" else ".webp"))
        rgb = read_image(path)
        assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
        assert abs(int(rgb[..., 0].mean()) - 200) <= 3, ext  # red channel first
        assert rgb[..., 2].mean() < 5, ext


def test_grayscale_and_16bit_png(tmp_path: Path) -> None:
    gray = np.full((4, 5), 77, np.uint8)
    (tmp_path / "g.png").write_bytes(encode(gray, ".png"))
    assert read_image(tmp_path / "g.png").tolist() == np.full((4, 5, 3), 77).tolist()
    deep = np.full((4, 5), 65535, np.uint16)
    deep[0, 0] = 0
    (tmp_path / "d.png").write_bytes(encode(deep, ".png"))
    image = read_image(tmp_path / "d.png")
    assert image.dtype == np.uint8 and image[1, 1].tolist() == [255, 255, 255]
    assert image[0, 0].tolist() == [0, 0, 0]


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    bgra = np.zeros((4, 4, 4), np.uint8)  # black, fully transparent
    bgra[0, 0] = (0, 0, 0, 255)  # one opaque black stroke pixel
    (tmp_path / "s.png").write_bytes(encode(bgra, ".png"))
    image = read_image(tmp_path / "s.png")
    assert image[0, 0].tolist() == [0, 0, 0]
    assert image[1, 1].tolist() == [255, 255, 255]


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda good: b"", "empty file (0 bytes)"),
        (lambda good: b"hello, I am not a picture\n", "not an image: it holds text"),
        (lambda good: good[: len(good) // 2], "truncated JPEG"),
        (lambda good: good[:20] + b"\x00" * 400 + good[420:], "corrupt JPEG"),
    ],
    ids=["zero-bytes", "text", "truncated", "corrupt-header"],
)
def test_bad_files_raise_one_error_naming_the_file(tmp_path: Path, make, problem: str) -> None:
    good = write_image(tmp_path / "good.jpg", size=64).read_bytes()
    bad = tmp_path / "bad.png"
    bad.write_bytes(make(good))
    with pytest.raises(ImageDecodeError) as caught:
        read_image(bad)
    assert str(caught.value).startswith(f"{bad}: {problem}")
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    assert check_image_file(bad) is not None
    assert check_image_file(tmp_path / "good.jpg") is None


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageDecodeError, match="file not found"):
        read_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageDecodeError, match="is a directory"):
        read_image(tmp_path)


def test_unicode_path(tmp_path: Path) -> None:
    path = write_image(tmp_path / "ünïcødé 写真" / "café.jpg")
    assert read_image(path).shape == (16, 16, 3)


def test_exif_orientation_is_applied_to_jpeg(tmp_path: Path) -> None:
    # A 2x1 landscape JPEG tagged "rotate 90° CW" (orientation 6) must come back portrait.
    wide = np.zeros((16, 32, 3), np.uint8)
    jpeg = encode(wide, ".jpg")
    exif = (
        b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01"
        b"\x00\x06\x00\x00\x00\x00\x00\x00"
    )
    app1 = b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif
    (tmp_path / "rot.jpg").write_bytes(jpeg[:2] + app1 + jpeg[2:])
    assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (16, 32)
    assert read_image(tmp_path / "rot.jpg").shape[:2] == (32, 16)


def test_sniff_format() -> None:
    assert sniff_format(b"\x89PNG\r\n\x1a\n....") == "PNG"
    assert sniff_format(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "WebP"
    assert sniff_format(b"GIF89a") is None
