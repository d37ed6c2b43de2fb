"""Checking an hnswlib index file before hnswlib reads it.

hnswlib trusts its file: a truncated or corrupted index can make its loader allocate absurd
amounts of memory, or make a later search follow a link into unmapped memory and crash the
process. This module checks everything the loader and the search dereference: the header's
offsets and sizes, every neighbour count and id on every level, each element's level, and the
entry point. It also returns each element's label and delete mark, so the caller can check
them against the item database.

Layout written by ``HierarchicalNSW::saveIndex`` (hnswlib 0.7–0.8): a 96-byte header, then
``count × size_data_per_element`` bytes of level 0 (per element: a uint32 whose low 16 bits
count the neighbours and whose third byte holds the delete mark, ``maxM0`` uint32 neighbour
ids, the float32 vector, a uint64 label), then per element a uint32 byte length followed by
that many bytes of upper-level links (per level: a count word and ``maxM`` ids).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sketchsearch.gallery.errors import GalleryCorruptError

_HEADER = struct.Struct("<6Q i I 3Q d Q")
_WORD = 4
_LABEL = 8
_CHUNK = 65536  # elements per pass over level 0, to bound memory


@dataclass(frozen=True)
class IndexHeader:
    offset_level0: int
    max_elements: int
    count: int
    size_data_per_element: int
    label_offset: int
    offset_data: int
    max_level: int
    entry_point: int
    max_m: int
    max_m0: int
    m: int
    mult: float
    ef_construction: int


@dataclass(frozen=True)
class IndexFacts:
    header: IndexHeader
    labels: np.ndarray  # uint64 [count]
    deleted: np.ndarray  # bool [count]


class _Corrupt(Exception):
    pass


def read_header(path: Path) -> IndexHeader:
    with path.open("rb") as handle:
        head = handle.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise GalleryCorruptError(f"{path}: truncated index ({len(head)} bytes, no full header)")
    return IndexHeader(*_HEADER.unpack(head))


def check_index_file(path: Path, *, dim: int, count: int, m: int) -> IndexFacts:
    """Raise GalleryCorruptError unless ``path`` is a sound index of ``count`` elements."""
    header = read_header(path)
    try:
        _check_header(header, dim, count, m)
        size = path.stat().st_size
        level0_end = _HEADER.size + header.count * header.size_data_per_element
        if size < level0_end + header.count * _WORD or (size - level0_end) % _WORD:
            raise _Corrupt(f"truncated: {size} bytes cannot hold {header.count} elements")
        labels, deleted = _check_level0(path, header)
        tail = np.fromfile(path, dtype="<u4", offset=level0_end)
        levels = _check_upper_levels(tail, header)
    except _Corrupt as problem:
        raise GalleryCorruptError(f"{path}: corrupt index: {problem}") from None
    if header.count and (
        levels[header.entry_point] != header.max_level or levels.max() > header.max_level
    ):
        raise GalleryCorruptError(f"{path}: corrupt index: the entry point is not on the top level")
    return IndexFacts(header, labels, deleted)


def _check_header(header: IndexHeader, dim: int, count: int, m: int) -> None:
    if (header.m, header.max_m, header.max_m0) != (m, m, 2 * m):
        raise _Corrupt(f"M is {header.m}, the manifest says {m}")
    links0 = header.max_m0 * _WORD + _WORD
    if header.size_data_per_element != links0 + 4 * dim + _LABEL:
        found = (header.size_data_per_element - links0 - _LABEL) / 4
        raise _Corrupt(f"vectors have {found:g} dimensions, the manifest says {dim}")
    if (header.offset_level0, header.offset_data, header.label_offset) != (
        0,
        links0,
        links0 + 4 * dim,
    ):
        raise _Corrupt("the header's offsets do not match its sizes")
    if header.count != count:
        raise _Corrupt(f"it holds {header.count} elements, the manifest says {count}")
    if header.count > header.max_elements or not math.isclose(header.mult, 1 / math.log(m)):
        raise _Corrupt("the header is inconsistent")
    if header.count == 0:
        return  # an empty index: hnswlib writes top level -1 and no entry point
    if not 0 <= header.max_level <= 64 or header.entry_point >= header.count:
        raise _Corrupt("the header's top level or entry point is out of range")


def _check_level0(path: Path, header: IndexHeader) -> tuple[np.ndarray, np.ndarray]:
    """Neighbour counts and ids on level 0 must be in range, or a search reads wild memory."""
    labels = np.zeros(header.count, np.uint64)
    deleted = np.zeros(header.count, bool)
    if header.count == 0:
        return labels, deleted
    block = np.memmap(
        path,
        dtype=np.uint8,
        mode="r",
        offset=_HEADER.size,
        shape=(header.count, header.size_data_per_element),
    )
    words = header.max_m0 + 1
    for start in range(0, header.count, _CHUNK):
        rows = block[start : start + _CHUNK]
        links = np.ascontiguousarray(rows[:, : words * _WORD]).view("<u4")
        _check_links(links, header.max_m0, header.count, f"level-0 element {start}+")
        deleted[start : start + len(rows)] = (links[:, 0] >> 16) & 0xFF != 0
        label_bytes = np.ascontiguousarray(
            rows[:, header.label_offset : header.label_offset + _LABEL]
        )
        labels[start : start + len(rows)] = label_bytes.view("<u8")[:, 0]
    return labels, deleted


def _check_links(links: np.ndarray, most: int, count: int, where: str) -> None:
    """``links`` rows are [count word, ids…]; the ids past each row's count are unused."""
    counts = links[:, 0] & 0xFFFF
    if counts.size and int(counts.max()) > most:
        raise _Corrupt(f"{where}: a neighbour list longer than {most}")
    used = np.arange(links.shape[1] - 1)[None, :] < counts[:, None]
    if used.any() and int(links[:, 1:][used].max()) >= count:
        raise _Corrupt(f"{where}: a neighbour id points past the last element")


def _check_upper_levels(tail: np.ndarray, header: IndexHeader) -> np.ndarray:
    """Walk the per-element link lists; return each element's level, checking every link.

    Most elements have no upper level, so their length word is 0: the walk jumps from one
    non-zero length word to the next instead of stepping through every element in Python.
    """
    per_level = header.max_m + 1  # words
    levels = np.zeros(header.count, np.int64)
    starts: list[int] = []
    element, position = 0, 0
    nonzero = np.flatnonzero(tail)
    while element < header.count:
        following = np.searchsorted(nonzero, position)
        next_list = int(nonzero[following]) if following < len(nonzero) else len(tail)
        empty = min(next_list - position, header.count - element)  # elements without a list
        element, position = element + empty, position + empty
        if element == header.count:
            break
        if position >= len(tail):
            raise _Corrupt(f"truncated in the link lists (element {element} of {header.count})")
        length = int(tail[position])
        if (
            length % (per_level * _WORD)
            or not 0 < length // (per_level * _WORD) <= header.max_level
        ):
            raise _Corrupt(f"element {element} has an impossible link-list size {length}")
        levels[element] = length // (per_level * _WORD)
        starts.append(position + 1)
        position += 1 + length // _WORD
        element += 1
    if position != len(tail):
        raise _Corrupt(f"{(len(tail) - position) * _WORD} bytes do not belong to any element")
    _check_upper_links(tail, starts, levels, header)
    return levels


def _check_upper_links(
    tail: np.ndarray, starts: list[int], levels: np.ndarray, header: IndexHeader
) -> None:
    if not starts:
        return
    per_level = header.max_m + 1
    owners = np.flatnonzero(levels)
    counts = levels[owners]
    first = np.repeat(np.cumsum(counts) - counts, counts)
    block_level = np.arange(int(counts.sum())) - first + 1
    block_start = np.repeat(np.array(starts), counts) + (block_level - 1) * per_level
    links = tail[block_start[:, None] + np.arange(per_level)[None, :]]
    _check_links(links, header.max_m, header.count, "an upper level")
    used = np.arange(header.max_m)[None, :] < (links[:, 0] & 0xFFFF)[:, None]
    neighbour_levels = levels[np.where(used, links[:, 1:], 0)]
    if (used & (neighbour_levels < block_level[:, None])).any():
        raise _Corrupt("an upper-level link points to an element without that level")
