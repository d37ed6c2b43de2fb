"""Checking an hnswlib index file before hnswlib reads it.

hnswlib trusts its file: a truncated or corrupted index, or one with another dimension, can
make its loader allocate absurd amounts of memory or crash the process. This module parses the
header and walks the per-element link lists (sizes only) so that every such file gives a clear
error instead.

Layout written by ``HierarchicalNSW::saveIndex`` (hnswlib 0.7–0.8): a 96-byte header, then
``count × size_data_per_element`` bytes of level-0 data, then for each element a uint32
``linkListSize`` followed by that many bytes of upper-level links.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sketchsearch.gallery.errors import GalleryCorruptError

_HEADER = struct.Struct("<6Q i I 3Q d Q")
_UINT32 = 4
_LABEL = 8


@dataclass(frozen=True)
class IndexHeader:
    max_elements: int
    count: int
    size_data_per_element: int
    max_level: int
    entry_point: int
    max_m: int
    max_m0: int
    m: int
    ef_construction: int

    def dim(self) -> int:
        links_level0 = self.max_m0 * _UINT32 + _UINT32
        return (self.size_data_per_element - links_level0 - _LABEL) // 4


def read_header(path: Path) -> IndexHeader:
    with path.open("rb") as handle:
        head = handle.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise GalleryCorruptError(f"{path}: truncated index ({len(head)} bytes, no full header)")
    values = _HEADER.unpack(head)
    return IndexHeader(
        max_elements=values[1],
        count=values[2],
        size_data_per_element=values[3],
        max_level=values[6],
        entry_point=values[7],
        max_m=values[8],
        max_m0=values[9],
        m=values[10],
        ef_construction=values[12],
    )


def check_index_file(path: Path, *, dim: int, count: int, m: int) -> IndexHeader:
    """Raise GalleryCorruptError unless ``path`` is a complete index of ``count`` elements."""
    header = read_header(path)
    size = path.stat().st_size
    problems = []
    if header.m != m or header.max_m0 != 2 * m or header.max_m != m:
        problems.append(f"M is {header.m}, the manifest says {m}")
    elif header.dim() != dim:
        problems.append(f"vectors have {header.dim()} dimensions, the manifest says {dim}")
    if header.count != count:
        problems.append(f"it holds {header.count} elements, the manifest says {count}")
    entry_ok = header.count == 0 or header.entry_point < header.count
    if header.count > header.max_elements or not 0 <= header.max_level <= 64 or not entry_ok:
        problems.append("the header is inconsistent")
    level0_end = _HEADER.size + header.count * header.size_data_per_element
    if not problems and size < level0_end + header.count * _UINT32:
        problems.append(f"truncated: {size} bytes cannot hold {header.count} elements")
    if not problems:
        problems += _level0_problems(path, header)
    if not problems:
        problems += _link_list_problems(path, header, level0_end, size)
    if problems:
        raise GalleryCorruptError(f"{path}: corrupt index: {'; '.join(problems)}")
    return header


def _level0_problems(path: Path, header: IndexHeader) -> list[str]:
    """Neighbour counts and ids on level 0 must be in range, or a search reads wild memory."""
    if header.count == 0:
        return []
    block = np.memmap(
        path,
        dtype=np.uint8,
        mode="r",
        offset=_HEADER.size,
        shape=(header.count, header.size_data_per_element),
    )
    links = block[:, : (header.max_m0 + 1) * _UINT32].copy().view("<u4")
    counts = links[:, 0] & 0xFFFF
    if int(counts.max()) > header.max_m0:
        return [f"element {int(np.argmax(counts > header.max_m0))} has too many neighbours"]
    used = np.arange(header.max_m0)[None, :] < counts[:, None]
    if used.any() and int(links[:, 1:][used].max()) >= header.count:
        return ["a level-0 neighbour id points past the last element"]
    return []


def _link_list_problems(path: Path, header: IndexHeader, offset: int, size: int) -> list[str]:
    """Walk the upper-level link-list sizes; they must tile the rest of the file exactly."""
    links_per_level = header.max_m * _UINT32 + _UINT32
    data = np.fromfile(path, dtype=np.uint8, offset=offset)
    position = 0
    for element in range(header.count):
        if position + _UINT32 > len(data):
            return [f"truncated in the link lists (element {element} of {header.count})"]
        length = int.from_bytes(data[position : position + _UINT32].tobytes(), "little")
        if length % links_per_level or length // links_per_level > header.max_level:
            return [f"element {element} has an impossible link-list size {length}"]
        position += _UINT32 + length
    if offset + position != size:
        return [f"{size - offset - position} unexpected bytes after the last element"]
    return []
