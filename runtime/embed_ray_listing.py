"""The listing file: each pending shard's sources, one JSON line, written by the Ray driver
into the shards folder and read back by the actor that embeds the shard; with the one-line
error a worker raises. Separate so the driver and the actor module share the file's format
(and the error) without importing each other.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from sketchsearch.data.atomic_file import write_bytes_atomic
from sketchsearch.data.errors import SketchsearchError
from sketchsearch.data.strict_json import dumps
from sketchsearch.runtime.embed_job import LISTING_FILE, EmbedPlan
from sketchsearch.runtime.gallery_build import Source


class EmbedWorkerError(SketchsearchError):
    """A Ray worker could not embed or write a shard (its own disk, a crash): one line."""


def write_listing(out: Path, plan: EmbedPlan, pending: Sequence[int]) -> dict[int, tuple[int, int]]:
    """Write the pending shards' sources to ``out/LISTING_FILE`` (one JSON line per shard,
    atomically); returns each shard's (offset, length) in it."""
    spans: dict[int, tuple[int, int]] = {}

    def lines() -> Iterator[bytes]:
        offset = 0
        for index in pending:
            line = dumps([index, *map(_listed, plan.shard_sources(index))]).encode() + b"\n"
            spans[index] = (offset, len(line))
            offset += len(line)
            yield line

    write_bytes_atomic(out / LISTING_FILE, lines())
    return spans


def read_listing(out: Path, index: int, offset: int, length: int) -> list[Source]:
    """Shard ``index``'s sources from the listing file (an ``OSError`` where ``out`` is not
    this node's to read)."""
    with open(out / LISTING_FILE, "rb") as handle:
        handle.seek(offset)
        raw = json.loads(handle.read(length))
    if not raw or raw[0] != index:
        raise EmbedWorkerError(
            f"{out / LISTING_FILE}: shard {index} is not where the driver wrote it (two runs "
            "into one folder at once?)"
        )
    return [Source(Path(f), p, lab, ins) for f, p, lab, ins in raw[1:]]


def _listed(source: Source) -> list[str | None]:
    return [str(source.file), source.path, source.label, source.instance]
