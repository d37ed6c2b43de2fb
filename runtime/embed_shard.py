"""One shard's work, the same on every runner: embed its images, record failures, write it.

The local runner calls :func:`embed_shard` in its own process; each Ray actor calls it with its
own engine. Both decode with the same pipeline (``embed_paths``), so a shard's rows do not
depend on where it was made. The failures file is written before the shard is renamed in: a
finished shard always has its failures recorded, and a killed run's half-done shard has
neither (a stale failures file is rewritten or removed when the shard is redone).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sketchsearch.data.atomic_file import write_text_atomic
from sketchsearch.data.strict_json import dumps
from sketchsearch.gallery.errors import GalleryCorruptError
from sketchsearch.gallery.shard_file import ShardRow, shard_name, write_shard
from sketchsearch.runtime.embed_job import ShardSpec, failures_path
from sketchsearch.runtime.engines.protocol import Engine
from sketchsearch.runtime.gallery_build import Source
from sketchsearch.runtime.pipeline import Failure, embed_paths


@dataclass(frozen=True)
class ShardSummary:
    """What a runner reports back about one written shard (small: it crosses Ray)."""

    index: int
    rows: int
    failures: tuple[Failure, ...]
    seconds: float
    embed_seconds: float
    started_at: float  # time.time() on the worker: the span of all shards' work, for img/s
    ended_at: float


def embed_shard(
    engine: Engine,
    spec: ShardSpec,
    index: int,
    sources: Sequence[Source],
    out: Path,
    batch_size: int | None = None,
    workers: int | None = None,
    progress: bool | None = False,
) -> ShardSummary:
    """Embed shard ``index`` (its ``sources``) and write it (with its failures file) into ``out``.

    A shard whose every file failed is still written, with no rows, so a rerun does not try
    those files again forever; its failures file says why (``--restart`` retries them).
    """
    start, started_at = time.perf_counter(), time.time()
    result = embed_paths(
        engine,
        [s.file for s in sources],
        batch_size=batch_size,
        workers=workers,
        progress=progress,
        description=f"shard {index}",
    )
    by_file = {str(s.file): s.path for s in sources}
    failures = [Failure(printable(by_file.get(f.path, f.path)), f.problem) for f in result.failures]
    keep, rows = [], []
    for at, (position, digest, size) in enumerate(
        zip(result.done, result.digests, result.sizes, strict=True)
    ):
        source = sources[position]
        problem = _unstorable(source, result.vectors[at], spec.dtype)
        if problem is None:
            keep.append(at)
            rows.append(ShardRow(source.path, digest, size, source.label, source.instance))
        else:
            failures.append(Failure(printable(source.path), problem))
    write_failures(failures_path(out, index), failures)
    header = spec.header(index, len(rows))
    write_shard(out / shard_name(index), header, result.vectors[keep], rows)
    return ShardSummary(
        index,
        len(rows),
        tuple(failures),
        time.perf_counter() - start,
        result.embed_seconds,
        started_at,
        time.time(),
    )


def _unstorable(source: Source, vector: np.ndarray, dtype: str) -> str | None:
    """Why this embedded image cannot be a shard row (None: it can), so that one odd file is
    a failure of that file instead of the end of the run (and of every rerun)."""
    for text in (source.path, source.label, source.instance):
        if text is not None and not _is_utf8(text):
            return "file name is not UTF-8; shard paths are text: rename the file"
    if not np.isfinite(vector).all():
        return "the model gave non-finite values (NaN or infinity) for this image"
    with np.errstate(over="ignore"):
        if not np.isfinite(vector.astype(dtype)).all():
            return f"values beyond {dtype}'s range for this image; use --dtype float32"
    return None


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a name's undecodable bytes, kept as surrogates by Python
        return False
    return True


def printable(path: str) -> str:
    """A failure's path as text any terminal and JSON reader takes (``caf\\xe9.png``)."""
    return (
        path
        if _is_utf8(path)
        else path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    )


def write_failures(path: Path, failures: tuple[Failure, ...] | list[Failure]) -> None:
    """One JSON object per failed file (``path`` relative to the root, ``problem``); no file
    when nothing failed (an old one from a killed attempt is removed: ``prepare_folder``
    refused a folder holding such a name that embed did not write)."""
    if not failures:
        path.unlink(missing_ok=True)
        return
    lines = [dumps({"path": f.path, "problem": f.problem}) for f in failures]
    write_text_atomic(path, "\n".join(lines) + "\n")


def read_failures(path: Path) -> list[Failure]:
    """The failures a finished shard recorded (none when the file is absent)."""
    if not path.exists():
        return []
    found = []
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                raw = json.loads(line)
                found.append(Failure(str(raw["path"]), str(raw["problem"])))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise GalleryCorruptError(
            f"{path}: damaged failures file ({err}); delete it and its shard to embed that "
            "shard again"
        ) from None
    return found
