"""Image dimensions read from a file's header, without decoding any pixel.

Used to refuse decompression bombs before the decoder allocates the full image, for every
format :func:`sketchsearch.data.imagefile.sniff_format` accepts (JPEG, PNG, WebP, BMP, TIFF).
Each parser returns ``(width, height)`` or None when the header is absent, cut short or
malformed: the caller then refuses the file, since an unknown size cannot be bounded.
"""

from __future__ import annotations

import struct

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# SOFn markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but don't.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RSTn, SOI: no length field
# TIFF tags: ImageWidth, ImageLength, TileWidth, TileLength; field types SHORT and LONG.
_TIFF_TAGS = {256: "width", 257: "height", 322: "tile_width", 323: "tile_height"}
_TIFF_UNSIGNED = {3: "H", 4: "I"}


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG, JPEG, WebP, BMP or TIFF header, else None."""
    try:
        if data.startswith(_PNG_SIGNATURE):
            return _png_size(data)
        if data.startswith(b"\xff\xd8"):
            return _jpeg_size(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data.startswith(b"BM"):
            return _bmp_size(data)
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_size(data)
    except struct.error:  # the header is cut short
        return None
    return None


def _positive(width: int, height: int) -> tuple[int, int] | None:
    return (width, height) if width > 0 and height > 0 else None


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack_from(">II", data, 16)
    return _positive(width, height)


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 1 < len(data):
        if data[pos] != 0xFF:
            return None  # lost sync: not a marker where one must be
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        pos += 2
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        (length,) = struct.unpack_from(">H", data, pos)
        if marker in _JPEG_SOF:
            height, width = struct.unpack_from(">HH", data, pos + 3)  # after the precision byte
            return _positive(width, height)  # height 0 means "defined later" (DNL): unknown
        pos += length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":  # lossy: 3-byte frame tag, start code, 14-bit sizes
        if data[23:26] != b"\x9d\x01\x2a":
            return None
        width, height = struct.unpack_from("<HH", data, 26)
        return _positive(width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L":  # lossless: signature byte, then 14-bit width-1 and height-1
        if data[20:21] != b"\x2f":
            return None
        (bits,) = struct.unpack_from("<I", data, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":  # extended: flags, then 24-bit canvas width-1 and height-1
        if len(data) < 30:
            return None
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    (header_size,) = struct.unpack_from("<I", data, 14)
    if header_size == 12:  # OS/2 BITMAPCOREHEADER: unsigned 16-bit sizes
        width, height = struct.unpack_from("<HH", data, 18)
        return _positive(width, height)
    if header_size >= 16:  # BITMAPINFOHEADER and later; a negative height means top-down
        width, height = struct.unpack_from("<ii", data, 18)
        return _positive(width, abs(height))
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """The first image's size (the one OpenCV decodes), from its IFD, in either byte order.

    A tiled TIFF is sized by the larger of image and tile per side, because the decoder
    allocates a whole tile: a 16×16 image with a claimed 30000×30000 tile is a bomb too.
    """
    order = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack_from(order + "I", data, 4)
    (count,) = struct.unpack_from(order + "H", data, offset)
    found: dict[str, int] = {}
    for entry in range(offset + 2, offset + 2 + 12 * count, 12):
        tag, kind, values = struct.unpack_from(order + "HHI", data, entry)
        if tag in _TIFF_TAGS and kind in _TIFF_UNSIGNED and values == 1:
            (found[_TIFF_TAGS[tag]],) = struct.unpack_from(
                order + _TIFF_UNSIGNED[kind], data, entry + 8
            )
    if "width" not in found or "height" not in found:
        return None
    width = max(found["width"], found.get("tile_width", 0))
    height = max(found["height"], found.get("tile_height", 0))
    return _positive(width, height)
