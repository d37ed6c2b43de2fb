"""Every image file is read with bounded memory and time (issue 13 §2).

The file size is refused from ``fstat`` before any byte is read, the signature from the first
bytes before the rest is read (``/proc/self/io`` counts the bytes read), and the pixel count
from the header before decoding, for every accepted format: tiny files whose headers claim
30000×30000 are refused in a child process that could not hold such an image at all.
"""

from __future__ import annotations

import json
import os
import resource
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from imagetree import encode

from sketchsearch.cli.main import cli, run
from sketchsearch.data.errors import ExitCode, ImageDecodeError, UsageError
from sketchsearch.data.imagefile import check_image_file, read_bytes, read_image
from sketchsearch.data.regular_file import MAX_FILE_BYTES_ENV, max_file_bytes

BOMB = 30000  # 30000×30000 RGB is 2.7 GB decoded; OpenCV's own limit (2^30 pixels) passes it


def bytes_read() -> int:
    """Bytes this process has read through read() so far (Linux's rchar)."""
    text = Path("/proc/self/io").read_text()
    return int(next(line for line in text.splitlines() if line.startswith("rchar:")).split()[1])


def sparse(path: Path, size: int, head: bytes = b"") -> Path:
    with path.open("wb") as handle:
        handle.write(head)
        handle.truncate(size)
    return path


def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path: Path) -> None:
    big = sparse(tmp_path / "huge.png", 3 << 30, b"\x89PNG\r\n\x1a\n")  # 3 GB, no disk used
    before = bytes_read()
    with pytest.raises(ImageDecodeError) as caught:
        read_bytes(big)
    assert bytes_read() - before < 1 << 20  # the old code read 1 GiB before refusing
    assert caught.value.problem == (
        f"larger than {256 << 20} bytes ({3 << 30} bytes): not read "
        f"(the limit is set by {MAX_FILE_BYTES_ENV})"
    )


def test_a_non_image_is_refused_after_its_first_bytes(tmp_path: Path) -> None:
    fake = sparse(tmp_path / "fake.jpg", 100 << 20, b"PK\x03\x04")  # a 100 MB zip named .jpg
    before = bytes_read()
    assert check_image_file(fake) == "not an image: no JPEG, PNG, WebP, BMP or TIFF signature"
    assert bytes_read() - before < 1 << 20


def test_the_size_limit_is_read_from_the_environment_at_call_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "small.png"
    path.write_bytes(encode(np.zeros((8, 8, 3), np.uint8), ".png"))
    size = path.stat().st_size
    monkeypatch.setenv(MAX_FILE_BYTES_ENV, str(size))
    assert read_image(path).shape == (8, 8, 3)
    monkeypatch.setenv(MAX_FILE_BYTES_ENV, str(size - 1))
    assert check_image_file(path) == (
        f"larger than {size - 1} bytes ({size} bytes): not read "
        f"(the limit is set by {MAX_FILE_BYTES_ENV})"
    )
    monkeypatch.delenv(MAX_FILE_BYTES_ENV)
    assert max_file_bytes() == 256 << 20


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1.5e9", "256M"])
def test_a_bad_size_limit_is_a_one_line_usage_error(
    value: str, monkeypatch: pytest.MonkeyPatch, sketchy_tree, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(MAX_FILE_BYTES_ENV, value)
    with pytest.raises(UsageError, match=f"^{MAX_FILE_BYTES_ENV}='"):
        max_file_bytes()
    root = sketchy_tree({"cat": {"p1": 1}})
    assert run(cli, ["data", "info", str(root), "--verify"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err == (
        f"error: {MAX_FILE_BYTES_ENV}={value!r}: expected a whole number of bytes of at least 1 "
        f"(default {256 << 20}, i.e. 256 MiB)\n"
    )


def test_a_bad_size_limit_stops_a_command_before_it_writes_anything(
    monkeypatch: pytest.MonkeyPatch, sketchy_tree, tmp_path: Path, capsys
) -> None:
    """Read only inside the decode workers, a bad limit left an empty gallery behind that
    blocked the rerun; every command now checks it before it starts."""
    monkeypatch.setenv(MAX_FILE_BYTES_ENV, "lots")
    root = sketchy_tree({"cat": {"p1": 1}})
    out = tmp_path / "g"
    args = ["gallery", "build", "--engine", str(tmp_path / "m.onnx"), "--images", str(root)]
    assert run(cli, [*args, "--out", str(out)]) == ExitCode.USAGE
    assert capsys.readouterr().err.startswith(f"error: {MAX_FILE_BYTES_ENV}='lots'")
    assert not out.exists()


# --- tiny files whose headers claim BOMB×BOMB pixels, one per accepted format and header ---


def png_bomb() -> bytes:
    data = bytearray(encode(np.zeros((8, 8, 3), np.uint8), ".png"))
    data[16:24] = struct.pack(">II", BOMB, BOMB)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # a valid IHDR CRC
    return bytes(data)


def jpeg_bomb(progressive: bool = False) -> bytes:
    params = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if progressive else []
    _, buffer = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8), params)
    data = bytearray(buffer.tobytes())
    sof = data.index(b"\xff\xc2" if progressive else b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", BOMB, BOMB)
    return bytes(data)


def webp_bomb(chunk: bytes) -> bytes:
    """Lossy and lossless WebP sizes have 14 bits (16383 at most); VP8X's canvas has 24."""
    if chunk == b"VP8X":
        body = b"\x00" * 4 + (BOMB - 1).to_bytes(3, "little") * 2
        return b"RIFF" + struct.pack("<I", 4 + 8 + len(body)) + b"WEBPVP8X" + b"\x0a\0\0\0" + body
    params = [cv2.IMWRITE_WEBP_QUALITY, 101 if chunk == b"VP8L" else 80]
    _, buffer = cv2.imencode(".webp", np.zeros((8, 8, 3), np.uint8), params)
    data = bytearray(buffer.tobytes())
    assert data[12:16] == chunk
    if chunk == b"VP8 ":
        data[26:30] = struct.pack("<HH", 16383, 16383)
    else:
        data[21:25] = struct.pack("<I", (16382 | 16382 << 14) | (data[24] & 0xF0) << 24)
    return bytes(data)


def bmp_bomb(core_header: bool) -> bytes:
    if core_header:  # OS/2 BITMAPCOREHEADER: 12 bytes, 16-bit sizes
        return (
            b"BM"
            + struct.pack("<IHHI", 26 + 3, 0, 0, 26)
            + struct.pack("<IHHHH", 12, BOMB, BOMB, 1, 24)
            + b"\0\0\0"
        )
    data = bytearray(encode(np.zeros((8, 8, 3), np.uint8), ".bmp"))
    data[18:26] = struct.pack("<ii", BOMB, -BOMB)  # top-down
    return bytes(data)


def tiff(order: str, width: int, height: int, tile: int = 0) -> bytes:
    """A real uncompressed 8-bit grey TIFF (one strip) whose IFD claims ``width × height``."""
    mark = b"II*\x00" if order == "<" else b"MM\x00*"
    pixels = bytes(range(16))  # 4×4 is all the file really holds
    entries = [
        (256, 3, width),  # ImageWidth, SHORT
        (257, 4, height),  # ImageLength, LONG
        (258, 3, 8),
        (259, 3, 1),
        (262, 3, 1),
        (273, 4, 8),  # StripOffsets: right after the header
        (277, 3, 1),
        (278, 4, height),
        (279, 4, width * height),
    ]
    if tile:
        entries += [(322, 4, tile), (323, 4, tile)]
    ifd = struct.pack(order + "H", len(entries))
    for tag, kind, value in sorted(entries):
        packed = struct.pack(order + ("HI"[kind == 4]), value).ljust(4, b"\0")
        ifd += struct.pack(order + "HHI", tag, kind, 1) + packed
    return mark + struct.pack(order + "I", 8 + len(pixels)) + pixels + ifd + b"\0\0\0\0"


BOMBS = {
    "png": (png_bomb, BOMB),
    "jpeg-baseline": (jpeg_bomb, BOMB),
    "jpeg-progressive": (lambda: jpeg_bomb(progressive=True), BOMB),
    "webp-lossy": (lambda: webp_bomb(b"VP8 "), 16383),
    "webp-lossless": (lambda: webp_bomb(b"VP8L"), 16383),
    "webp-extended": (lambda: webp_bomb(b"VP8X"), BOMB),
    "bmp-info-header": (lambda: bmp_bomb(core_header=False), BOMB),
    "bmp-core-header": (lambda: bmp_bomb(core_header=True), BOMB),
    "tiff-little-endian": (lambda: tiff("<", BOMB, BOMB), BOMB),
    "tiff-big-endian": (lambda: tiff(">", BOMB, BOMB), BOMB),
    "tiff-tiled": (lambda: tiff("<", 4, 4, tile=BOMB), BOMB),
}

CHILD = """
import json, sys
from sketchsearch.data.imagefile import check_image_file
print(json.dumps({path: check_image_file(path) for path in sys.argv[1:]}))
"""


def check_in_small_memory(paths: list[Path]) -> dict[str, str | None]:
    """check_image_file on each path in a child limited to 1.5 GB of address space."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, str | None] = json.loads(done.stdout)
    return result


def test_the_tiff_builder_makes_real_tiffs(tmp_path: Path) -> None:
    for order in "<>":
        (tmp_path / "t.tif").write_bytes(tiff(order, 4, 4))
        image = read_image(tmp_path / "t.tif")
        assert image.shape == (4, 4, 3) and image[1, 2].tolist() == [6, 6, 6]


def test_headers_claiming_30000x30000_are_refused_before_decoding(tmp_path: Path) -> None:
    paths = []
    for name, (make, _) in BOMBS.items():
        paths.append(tmp_path / f"{name}.img")
        paths[-1].write_bytes(make())
        assert paths[-1].stat().st_size < 2000
    problems = check_in_small_memory(paths)
    for path, (name, (_, side)) in zip(paths, BOMBS.items(), strict=True):
        assert problems[str(path)] == (
            f"decompression bomb: {side}×{side} pixels, "
            "more than the limit of 100000000 (max_pixels)"
        ), name


@pytest.mark.parametrize(
    ("head", "name"),
    [
        (b"P6\n30000 30000\n255\n", "PPM"),
        (b"P5\n30000 30000\n255\n", "PGM"),
        (b"GIF89a\x30\x75\x30\x75\x00\x00\x00", "GIF"),
        (b"\x59\xa6\x6a\x95" + struct.pack(">II", BOMB, BOMB), "Sun raster"),
        (b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 30000 +X 30000\n", "HDR"),
        (b"PF\n30000 30000\n-1.0\n", "PFM"),
        (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
        (b"v/1\x01\x02\x00\x00\x00", "OpenEXR"),
        (b"II+\x00\x08\x00\x00\x00", "BigTIFF"),
    ],
)
def test_formats_opencv_decodes_without_a_checked_header_are_refused(
    tmp_path: Path, head: bytes, name: str
) -> None:
    path = tmp_path / "image.png"
    path.write_bytes(head + bytes(64))
    assert check_image_file(path) == "not an image: no JPEG, PNG, WebP, BMP or TIFF signature"


def test_a_header_without_a_size_is_refused_before_decoding(tmp_path: Path) -> None:
    data = bytearray(encode(np.zeros((16, 16, 3), np.uint8), ".jpg"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 7] = b"\0\0"  # height 0: "defined by a DNL marker later"
    (tmp_path / "dnl.jpg").write_bytes(bytes(data))
    (tmp_path / "no-ifd.tif").write_bytes(b"II*\x00" + struct.pack("<I", 1 << 20) + bytes(64))
    assert check_image_file(tmp_path / "dnl.jpg") == (
        "corrupt JPEG: its header gives no image size, so it is not decoded"
    )
    assert check_image_file(tmp_path / "no-ifd.tif") == (
        "corrupt TIFF: its header gives no image size, so it is not decoded"
    )


def test_the_pixel_limit_is_the_callers_to_set(tmp_path: Path) -> None:
    from sketchsearch.data.imagefile import decode_image

    data = encode(np.zeros((20, 30, 3), np.uint8), ".png")
    assert decode_image(data, "x.png", max_pixels=600).shape == (20, 30, 3)
    with pytest.raises(ImageDecodeError, match=r"^x.png: decompression bomb: 30×20 pixels"):
        decode_image(data, "x.png", max_pixels=599)
