"""Galleries from image files: `gallery build` makes one, `gallery add` extends one.

Items are stored relative to the gallery root (the images folder, or the split's data root),
labelled by their category folder. ``add`` hashes files first and embeds only those that are
new or changed, so re-running it over the same folder costs a read, not an inference.

Both keep every item inside its root by one rule (``inside_root``): a file is indexed under
its own name in the root, and a symlink whose target resolves outside the root is skipped and
reported as a failure ("symlink points outside the root"); the rest of the batch carries on.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from sketchsearch.data.errors import ImageDecodeError, UsageError
from sketchsearch.data.imagefile import image_files
from sketchsearch.data.regular_file import max_file_bytes, read_regular_file
from sketchsearch.data.split_spec import SplitPart
from sketchsearch.gallery.items import GalleryItem
from sketchsearch.gallery.manifest import GallerySource
from sketchsearch.gallery.store import GalleryStore
from sketchsearch.gallery.store_table import create_gallery, open_gallery
from sketchsearch.runtime.engines.protocol import Engine
from sketchsearch.runtime.pipeline import (
    Failure,
    default_workers,
    embed_paths,
    points_outside,
    relative_to_root,
)
from sketchsearch.runtime.retriever import model_ref


@dataclass(frozen=True)
class Source:
    """One image to index: its file, its path inside the gallery, its labels."""

    file: Path
    path: str
    label: str | None
    instance: str | None = None


@dataclass
class BuildReport:
    gallery: str  # the store, as `open_gallery` takes it
    indexed: int = 0
    updated: int = 0
    skipped: int = 0  # already in the gallery with the same content
    failed: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    embed_seconds: float = 0.0
    embedded: int = 0

    @property
    def images_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0


def folder_sources(folder: Path, option: str = "--images") -> list[Source]:
    """Every image under ``folder``; the first sub-folder names the label.

    Paths are taken as listed, not resolved, so a symlink keeps its name in the folder; the
    gallery commands then skip those whose target is outside the root (``inside_root``).
    """
    sources = []
    for file in image_files(folder, option, require_any=False):
        rel = file.relative_to(folder).as_posix()
        parts = PurePosixPath(rel).parts
        sources.append(Source(file, rel, parts[0] if len(parts) > 1 else None))
    return sources


def split_sources(part: SplitPart, domain: str) -> list[Source]:
    return [
        Source(part.path(item), item.path, item.category, item.instance)
        for item in part.items(domain)
    ]


def split_source(part: SplitPart, domain: str) -> GallerySource:
    """What a gallery of ``part``'s ``domain`` images is, as evaluation checks it."""
    return GallerySource(
        kind="split",
        domain=domain,
        split_fingerprint=part.split.fingerprint,
        part=part.part,
        split_file=str(part.source),
    )


FOLDER_SOURCE = GallerySource(kind="folder")


def build_gallery(
    engine: Engine,
    out: str | os.PathLike[str],
    root: Path,
    sources: Sequence[Source],
    batch_size: int | None = None,
    workers: int | None = None,
    progress: bool | None = None,
    source: GallerySource = FOLDER_SOURCE,
) -> BuildReport:
    """A new gallery at ``out`` holding ``sources``, committed once at the end.

    Sources that are symlinks to files outside ``root`` are skipped and reported (``inside_root``).
    ``source`` is recorded in the gallery: what the images are (``split_source`` for a split).
    """
    _check_gallery_encoder(engine)
    max_file_bytes()  # a bad limit is refused before the gallery is created, not inside workers
    if not sources:
        raise UsageError("no images to index")
    kept, escaping = inside_root(root, sources)
    card = engine.card
    gallery = create_gallery(
        out,
        card.embed_dim,
        "cosine",
        model=model_ref(card),
        root=str(root.resolve()),
        source=source,
    )
    with gallery:
        report = _index(engine, gallery, kept, batch_size, workers, progress, check_known=False)
    report.failed[:0] = escaping
    return report


def add_files(
    engine: Engine,
    gallery_dir: str | os.PathLike[str],
    files: Sequence[Path],
    batch_size: int | None = None,
    workers: int | None = None,
    progress: bool | None = None,
) -> BuildReport:
    """Add image files (or folders of them) under the gallery's root to an existing gallery.

    Files outside the root, and symlinks to files outside it, are skipped and reported.
    """
    _check_gallery_encoder(engine)
    with open_gallery(gallery_dir, expected_model=model_ref(engine.card), mode="rw") as gallery:
        root = gallery.manifest.root
        if root is None:
            raise UsageError(f"{gallery.ref}: the gallery has no root folder to add files under")
        sources, outside = _sources_under(Path(root), files)
        kept, escaping = inside_root(Path(root), sources)
        report = _index(engine, gallery, kept, batch_size, workers, progress, check_known=True)
        origin = gallery.manifest.source
        if report.indexed and origin is not None and origin.kind == "split":
            gallery.set_source(replace(origin, kind="mixed", domain=None))
        outside_failures = [Failure(str(f), f"not under the gallery root {root}") for f in outside]
        report.failed[:0] = outside_failures + escaping
        return report


def _check_gallery_encoder(engine: Engine) -> None:
    if not engine.card.embeds("gallery"):
        raise UsageError(
            f"{engine.path}: this file holds the query encoder of a model with separate "
            "encoders; index with its .gallery.onnx"
        )


def inside_root(root: Path, sources: Sequence[Source]) -> tuple[list[Source], list[Failure]]:
    """The sources whose files, symlinks followed, lie inside ``root``; a failure for each other.

    The rule of both ``gallery build`` and ``gallery add``: an item is named by its path in the
    root as listed, and a symlink whose target resolves outside the root is not indexed, so
    the gallery never holds an item whose bytes live elsewhere. Symlinks that stay inside the
    root are indexed under their own names. The root itself may be a symlink.
    """
    resolved_root = root.resolve()
    kept: list[Source] = []
    failed: list[Failure] = []
    for source in sources:
        if points_outside(source.file, resolved_root):
            failed.append(Failure(str(source.file), f"symlink points outside the root {root}"))
        else:
            kept.append(source)
    return kept, failed


def _sources_under(root: Path, files: Sequence[Path]) -> tuple[list[Source], list[Path]]:
    expanded: list[Path] = []
    for file in files:
        if file.is_dir():
            expanded.extend(s.file for s in folder_sources(file))
        else:
            expanded.append(file)
    sources, outside, seen = [], [], set()
    for file, rel in zip(expanded, relative_to_root(expanded, root), strict=True):
        if rel is None:
            outside.append(file)
            continue
        if rel in seen:  # named twice (a file and its folder): index it once
            continue
        seen.add(rel)
        parts = PurePosixPath(rel).parts
        sources.append(Source(file, rel, parts[0] if len(parts) > 1 else None))
    return sources, outside


def _index(
    engine: Engine,
    gallery: GalleryStore,
    sources: Sequence[Source],
    batch_size: int | None,
    workers: int | None,
    progress: bool | None,
    check_known: bool,
) -> BuildReport:
    start = time.perf_counter()
    report = BuildReport(gallery.ref)
    todo = list(sources)
    if check_known:
        known = gallery.digests(s.path for s in todo)
        if known:
            digests = _hash_files([s.file for s in todo if s.path in known], workers)
            unchanged = {
                s.path for s in todo if s.path in known and digests.get(s.file) == known[s.path]
            }
            report.skipped = len(unchanged)
            todo = [s for s in todo if s.path not in unchanged]
    embedded = embed_paths(
        engine,
        [s.file for s in todo],
        batch_size=batch_size,
        workers=workers,
        progress=progress,
        description="indexing",
    )
    report.failed.extend(embedded.failures)
    items = [
        GalleryItem(todo[p].path, digest, todo[p].label, todo[p].instance)
        for p, digest in zip(embedded.done, embedded.digests, strict=True)
    ]
    if items:
        added = gallery.add(embedded.vectors, items)
        report.indexed, report.updated = len(added.added), len(added.updated)
        report.skipped += len(added.skipped)
    report.embedded = len(embedded.done)
    report.embed_seconds = embedded.embed_seconds
    report.seconds = time.perf_counter() - start
    return report


def _hash_files(files: Sequence[Path], workers: int | None) -> dict[Path, str]:
    def digest(file: Path) -> tuple[Path, str]:
        try:  # never open() a FIFO a user named: it would block
            return file, hashlib.sha256(read_regular_file(file)).hexdigest()
        except ImageDecodeError:
            return file, ""  # unreadable: embedding will report it

    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        return dict(pool.map(digest, files))


def describe_build(report: BuildReport, verb: str = "indexed") -> str:
    lines = [
        f"{report.gallery}: {verb} {report.indexed}, updated {report.updated}, skipped "
        f"{report.skipped} already present, failed {len(report.failed)}; "
        f"{report.embedded} images embedded in {report.seconds:.1f} s "
        f"({report.images_per_second:.1f} img/s)"
    ]
    lines.extend(f"  failed: {failure}" for failure in report.failed[:20])
    if len(report.failed) > 20:
        lines.append(f"  … and {len(report.failed) - 20} more")
    return "\n".join(lines)
