"""Checking a shards folder before an import creates anything: headers, run file, failures.

Separate from the import itself because it only reads: ``gallery import`` calls it before any
gallery is made or opened, so a refused folder leaves nothing behind.

A folder written by ``sketchsearch embed`` holds its run file (``embed-run.json``, read here
as plain JSON: the gallery layer does not import the runtime's): a shard the run planned but
that is missing (an unfinished run) refuses the import, naming it, unless ``partial`` is
asked for; the images that failed to embed (``failures-*.jsonl``) are counted in the report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sketchsearch.data.errors import UsageError
from sketchsearch.gallery.errors import GalleryCorruptError, GalleryMismatchError
from sketchsearch.gallery.manifest import GallerySource, ModelRef
from sketchsearch.gallery.shard_file import (
    SHARD_NAME,
    ShardHeader,
    check_same_family,
    list_shards,
    read_header,
)

# runtime/embed_job.py's run file and failures files, read as plain JSON text here
RUN_FILE = "embed-run.json"
FAILURES_GLOB = "failures-*.jsonl"
NAMED_AT_MOST = 10  # missing shard indices named in a message


@dataclass(frozen=True)
class ShardSet:
    """The checked shards of one import and what they all share."""

    paths: list[Path]
    model: ModelRef
    root: str | None
    source: GallerySource | None
    rows: int
    plans: int  # distinct runs the shards come from
    headers: tuple[ShardHeader, ...] = ()  # of ``paths``, as checked: a reread must match


@dataclass(frozen=True)
class RunCheck:
    """What the embed run file and failures files of a shards folder say."""

    planned: int | None  # None: no run file (shards from elsewhere)
    missing: tuple[int, ...]
    failures: int


def check_shards(shards_dir: str | os.PathLike[str]) -> ShardSet:
    """Read and cross-check every shard header in ``shards_dir``; nothing is created."""
    paths = list_shards(shards_dir)
    if not paths:
        raise UsageError(f"{shards_dir}: no shards (shard-NNNNN.parquet) to import")
    headers = [(path, read_header(path)) for path in paths]
    model = check_same_family(headers)
    first_path, first = headers[0]
    for path, header in headers[1:]:
        for what, mine, theirs in (
            ("collection root", header.root, first.root),
            ("preprocessing", header.preprocess, first.preprocess),
            ("source", header.source, first.source),
        ):
            if mine != theirs:
                raise GalleryMismatchError(
                    f"{path}: {what} {mine!r}, but {first_path} has {theirs!r}: shards of "
                    "different collections cannot make one gallery; import them separately, "
                    "or add one set to the other's gallery with --into"
                )
    return ShardSet(
        paths=paths,
        model=model,
        root=first.root,
        source=first.source,
        rows=sum(header.rows for _, header in headers),
        plans=len({header.plan for _, header in headers}),
        headers=tuple(header for _, header in headers),
    )


def check_run(shards_dir: str | os.PathLike[str], paths: Sequence[Path]) -> RunCheck:
    """The shards the folder's embed run planned that are not among ``paths``, and how many
    images it recorded as failed; no run file: nothing is known to be missing."""
    folder = Path(shards_dir)
    run_file = folder / RUN_FILE
    failures = sum(_lines(path) for path in sorted(folder.glob(FAILURES_GLOB)))
    if not run_file.is_file():
        return RunCheck(None, (), failures)
    try:
        planned = json.loads(run_file.read_text(encoding="utf-8"))["shards"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise GalleryCorruptError(f"{run_file}: not a readable embed run file ({err})") from None
    if not isinstance(planned, int) or isinstance(planned, bool) or planned < 0:
        raise GalleryCorruptError(f"{run_file}: shards {planned!r} is not a shard count")
    present = {int(match.group(1)) for p in paths if (match := SHARD_NAME.match(p.name))}
    missing = tuple(index for index in range(planned) if index not in present)
    return RunCheck(planned, missing, failures)


def _lines(path: Path) -> int:
    try:
        return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    except (OSError, UnicodeDecodeError) as err:
        raise GalleryCorruptError(f"{path}: not a readable failures file ({err})") from None


def indices(missing: Sequence[int]) -> str:
    named = ", ".join(str(index) for index in missing[:NAMED_AT_MOST])
    more = f" and {len(missing) - NAMED_AT_MOST} more" if len(missing) > NAMED_AT_MOST else ""
    return f"shard {named}{more}"
