"""A gallery from embedding shards, without embedding again (``sketchsearch gallery import``).

Every shard's header is read and checked before anything is created: one model family, one
collection root (row paths are relative to it), one preprocessing and one source. Shards of
different runs (plans) may be combined when all of these match; a run's plan only says how it
sliced its listing. The rows are then added batch by batch (``read_shard`` bounds the memory)
and committed once at the end.

The shards are checked in ``shard_set``, the new gallery is made in ``shard_target`` and the
rows to add are chosen in ``shard_rows``; this module runs the import and reports it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from sketchsearch.data.errors import UsageError
from sketchsearch.gallery.checks import check_paths, check_vectors
from sketchsearch.gallery.errors import (
    GalleryCorruptError,
    GalleryError,
    GalleryMismatchError,
)
from sketchsearch.gallery.shard_file import READ_BATCH_ROWS, ShardHeader, read_shard
from sketchsearch.gallery.shard_rows import ReadPaths, item, new_rows, unit
from sketchsearch.gallery.shard_set import ShardSet, check_run, check_shards, indices
from sketchsearch.gallery.shard_target import check_out, new_gallery
from sketchsearch.gallery.store import GalleryStore
from sketchsearch.gallery.store_table import open_gallery

# Called after each shard with (shards done, rows read so far): progress, and the crash tests.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ImportReport:
    ref: str  # the gallery imported into
    shards: int
    rows: int  # read from the shards
    imported: int  # new items
    updated: int  # items replaced with new content (only into an existing gallery)
    duplicates: int  # rows skipped: same path and content already in the gallery
    seconds: float
    missing: tuple[int, ...] = ()  # shards the embed run planned that were not there
    planned: int | None = None  # shards the embed run planned (None: no run file)
    failures: int = 0  # images the embed run could not embed (its failures files)
    leftovers: tuple[str, ...] = ()  # staging folders a killed import left beside ``out``

    def describe(self) -> str:
        updated = f", replaced {self.updated} changed item(s)" if self.updated else ""
        text = (
            f"imported {self.imported} item(s) from {self.shards} shard(s) into {self.ref} "
            f"in {self.seconds:.1f} s; skipped {self.duplicates} duplicate(s){updated}"
        )
        if self.missing:
            text += (
                f"; PARTIAL: {len(self.missing)} of the run's {self.planned} shard(s) missing "
                f"({indices(self.missing)})"
            )
        if self.failures:
            text += f"; {self.failures} image(s) failed to embed (failures-*.jsonl)"
        for leftover in self.leftovers:
            text += f"; {leftover} is left by a killed import: delete it"
        return text


def import_shards(
    shards_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    into: str | os.PathLike[str] | None = None,
    batch_rows: int = READ_BATCH_ROWS,
    progress: Progress | None = None,
    partial: bool = False,
) -> ImportReport:
    """Import every shard of ``shards_dir`` into a new gallery ``out`` or an existing ``into``.

    ``partial``: import the shards there even if the embed run that wrote them did not finish.
    """
    if (out is None) == (into is None):
        raise UsageError("pass either --out NEW_GALLERY or --into EXISTING_GALLERY")
    started = time.perf_counter()
    leftovers = check_out(out) if out is not None else ()
    shards = check_shards(shards_dir)
    run = check_run(shards_dir, shards.paths)
    if run.missing and not partial:
        raise UsageError(
            f"{shards_dir}: the embed run planned {run.planned} shard(s); {indices(run.missing)} "
            "missing: finish it (run the same `sketchsearch embed` again), or pass --partial "
            "to import the shards there"
        )
    if into is not None:
        with open_gallery(into, expected_model=shards.model, mode="rw") as gallery:
            _check_into(gallery, shards)
            counts = _add_all(gallery, shards, batch_rows, progress, creating=False)
            if counts[0] + counts[1] and gallery.manifest.source != shards.source:
                _record_mixed(gallery)
        ref = os.fspath(into)
    else:
        assert out is not None
        with new_gallery(out, shards) as gallery:
            counts = _add_all(gallery, shards, batch_rows, progress, creating=True)
        ref = os.fspath(out)
    imported, updated, duplicates, rows = counts
    return ImportReport(
        ref=ref,
        shards=len(shards.paths),
        rows=rows,
        imported=imported,
        updated=updated,
        duplicates=duplicates,
        seconds=time.perf_counter() - started,
        missing=run.missing,
        planned=run.planned,
        failures=run.failures,
        leftovers=leftovers,
    )


def _check_into(gallery: GalleryStore, shards: ShardSet) -> None:
    root = gallery.manifest.root
    if root != shards.root:
        raise GalleryMismatchError(
            f"{gallery.ref}: its item paths are relative to {root!r}, the shards' to "
            f"{shards.root!r}: the same path would name different files"
        )


def _record_mixed(gallery: GalleryStore) -> None:
    """As ``gallery add`` does: a split's gallery with other images added is ``mixed``."""
    origin = gallery.manifest.source
    if origin is not None and origin.kind == "split":
        gallery.set_source(replace(origin, kind="mixed", domain=None))


def _add_all(
    gallery: GalleryStore,
    shards: ShardSet,
    batch_rows: int,
    progress: Progress | None,
    creating: bool,
) -> tuple[int, int, int, int]:
    """(imported, updated, duplicates, rows read): every shard's rows, batch by batch."""
    imported = updated = duplicates = rows_read = 0
    read = ReadPaths()  # into a new gallery, the gallery itself remembers what was read
    checked = zip(shards.paths, shards.headers, strict=True)
    for done, (path, expected) in enumerate(checked, start=1):
        for header, vectors, rows in read_shard(path, batch_rows):
            _check_unchanged(path, header, expected)
            if not creating:
                read.check_and_add(path, rows)
            keep, skipped = new_rows(gallery, path, rows, creating)
            duplicates += skipped
            rows_read += len(rows)
            if not keep:
                continue
            matrix = unit(vectors[keep]) if header.dtype == "float16" else vectors[keep]
            items = [item(rows[i]) for i in keep]
            try:  # the shard's fault: named; an error of the store itself is not the shard's
                check_vectors(matrix, gallery.manifest, path, stored=True)
                check_paths(items)
            except GalleryError as err:
                raise GalleryCorruptError(f"{path}: {err}") from None
            report = gallery.add(matrix, items)
            imported += len(report.added)
            updated += len(report.updated)
        if progress is not None:
            progress(done, rows_read)
    return imported, updated, duplicates, rows_read


def _check_unchanged(path: Path, header: ShardHeader, expected: ShardHeader) -> None:
    """A shard replaced between the header check and the read is refused, not imported: its
    whole header (model, dim, preprocessing, source, dtype, plan, rows) must be as checked."""
    if header != expected:
        raise GalleryMismatchError(f"{path}: changed while it was being imported")
