"""A gallery from embedding shards, without embedding again (``sketchsearch gallery import``).

Every shard's header is read and checked before anything is created: one model family, one
collection root (row paths are relative to it), one preprocessing and one source. Shards of
different runs (plans) may be combined when all of these match; a run's plan only says how it
sliced its listing. The rows are then added batch by batch (``read_shard`` bounds the memory)
and committed once at the end.

Duplicates follow ``gallery add``: a row whose path is already in the gallery with the same
content is skipped and counted. The same content under two paths is two items, as
``gallery build`` makes of two identical files. The same path with two contents among the
shards means the collection changed between runs: which is right cannot be known, so the
import is refused and names the shard, into a new gallery and an existing one alike. Into an
existing gallery (``into``), a path the gallery holds with other content (and the shards with
one) is replaced, as ``gallery add`` replaces a changed file. The paths already read are
remembered as 64-bit hashes of path and content (16 bytes a row), not as strings.

A new folder gallery is built in a hidden folder beside ``out`` and renamed into place after
its one commit, so a killed import leaves no gallery at ``out``, only the hidden folder
(``.OUT.import-*``), which the next import to that ``out`` names for deletion. ``out`` is
checked before any work: ``.``, ``..`` and a symbolic link are refused. If the rename itself
fails, the finished gallery is kept in the hidden folder and the error says where.

A store reference (``qdrant://…``) has no staging: the collection is made at the reference,
uncommitted (no manifest point) until the one commit at the end. An import that fails with an
error deletes the collection it made; a killed one leaves a collection without a manifest,
which nothing opens as a gallery and which must be deleted before importing there again.

A folder written by ``sketchsearch embed`` holds its run file (``embed-run.json``, read here
as plain JSON: the gallery layer does not import the runtime's): a shard the run planned but
that is missing (an unfinished run) refuses the import, naming it, unless ``partial`` is
asked for; the images that failed to embed (``failures-*.jsonl``) are counted in the report.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NoReturn

import numpy as np

from sketchsearch.data.errors import UsageError
from sketchsearch.gallery.checks import check_paths, check_vectors
from sketchsearch.gallery.commit import MANIFEST_FILE
from sketchsearch.gallery.errors import (
    GalleryCorruptError,
    GalleryError,
    GalleryMismatchError,
    GalleryWriteError,
)
from sketchsearch.gallery.items import GalleryItem
from sketchsearch.gallery.manifest import GallerySource, ModelRef
from sketchsearch.gallery.shard_file import (
    READ_BATCH_ROWS,
    SHARD_NAME,
    ShardHeader,
    ShardRow,
    check_same_family,
    list_shards,
    read_header,
    read_shard,
)
from sketchsearch.gallery.store import GalleryStore
from sketchsearch.gallery.store_table import create_gallery, find_store_kind, open_gallery

# runtime/embed_job.py's run file and failures files, read as plain JSON text here
RUN_FILE = "embed-run.json"
FAILURES_GLOB = "failures-*.jsonl"
NAMED_AT_MOST = 10  # missing shard indices named in a message

# Called after each shard with (shards done, rows read so far): progress, and the crash tests.
Progress = Callable[[int, int], None]


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
                f"({_indices(self.missing)})"
            )
        if self.failures:
            text += f"; {self.failures} image(s) failed to embed (failures-*.jsonl)"
        for leftover in self.leftovers:
            text += f"; {leftover} is left by a killed import: delete it"
        return text


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


def _indices(missing: Sequence[int]) -> str:
    named = ", ".join(str(index) for index in missing[:NAMED_AT_MOST])
    more = f" and {len(missing) - NAMED_AT_MOST} more" if len(missing) > NAMED_AT_MOST else ""
    return f"shard {named}{more}"


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
    leftovers = _check_out(out) if out is not None else ()
    shards = check_shards(shards_dir)
    run = check_run(shards_dir, shards.paths)
    if run.missing and not partial:
        raise UsageError(
            f"{shards_dir}: the embed run planned {run.planned} shard(s); {_indices(run.missing)} "
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
        with _new_gallery(out, shards) as gallery:
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


def _check_out(out: str | os.PathLike[str]) -> tuple[str, ...]:
    """Refuse an ``out`` folder the import could not end in, before any work; return the
    staging folders a killed import to it left behind."""
    kind, text = find_store_kind(out)
    if kind.scheme:
        return ()
    target = Path(text)
    if target.name in ("", ".", ".."):
        raise UsageError(f"--out {text!r}: name a new folder for the gallery, e.g. gallery/")
    if target.is_symlink():
        raise UsageError(
            f"--out {text}: a symbolic link; name the folder itself ({os.path.realpath(target)})"
        )
    if target.exists() and not (target.is_dir() and not any(target.iterdir())):
        hint = (
            f"; add the shards to the gallery there with `sketchsearch gallery import SHARDS "
            f"--into {target}`"
            if (target / MANIFEST_FILE).is_file()
            else ""
        )
        raise GalleryError(f"{target}: already exists; choose a new folder{hint}")
    return tuple(str(p) for p in sorted(target.parent.glob(f".{target.name}.import-*")))


@contextlib.contextmanager
def _new_gallery(out: str | os.PathLike[str], shards: ShardSet) -> Iterator[GalleryStore]:
    """A new gallery, committed on a clean exit; a folder one appears at ``out`` only then."""
    kind, text = find_store_kind(out)
    if kind.scheme.startswith("qdrant"):
        with _new_collection(text, shards) as gallery:
            yield gallery
        return
    if kind.scheme:
        with create_gallery(
            text, shards.model.dim, model=shards.model, root=shards.root, source=shards.source
        ) as gallery:
            yield gallery
        return
    from sketchsearch.gallery.gallery import Gallery

    target = Path(text)
    staging = target.parent / f".{target.name}.import-{secrets.token_hex(4)}"
    try:
        with Gallery.create(
            staging,
            shards.model.dim,
            model=shards.model,
            root=shards.root,
            source=shards.source,
            capacity=shards.rows,  # known: the index never grows by copying itself
        ) as gallery:
            yield gallery
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        os.replace(staging, target)  # an empty folder at ``out`` is replaced too
    except OSError as err:
        raise GalleryWriteError(
            f"{target}: the imported gallery could not be moved there ({err.strerror}); it is "
            f"complete in {staging}: rename that folder yourself"
        ) from None
    _sync_folder(target.parent)


def _sync_folder(folder: Path) -> None:
    """Make the rename durable: fsync the folder that holds the new entry."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def _new_collection(text: str, shards: ShardSet) -> Iterator[GalleryStore]:
    """A Qdrant collection made uncommitted (as ``gallery push`` makes one) and deleted if
    the import fails, so that a rerun can make it again."""
    from sketchsearch.gallery.qdrant_points import connect
    from sketchsearch.gallery.qdrant_ref import parse_ref
    from sketchsearch.gallery.qdrant_store import QdrantStore

    store = QdrantStore.create(
        text, shards.model.dim, shards.model, shards.root, shards.source, commit=False
    )
    try:
        with store:
            yield store
    except BaseException:
        where = parse_ref(text)
        with contextlib.suppress(Exception):  # the import's own error is the one to report
            client = connect(where, create=False)
            try:
                client.delete_collection(where.collection)
            finally:
                client.close()
        raise


def _add_all(
    gallery: GalleryStore,
    shards: ShardSet,
    batch_rows: int,
    progress: Progress | None,
    creating: bool,
) -> tuple[int, int, int, int]:
    """(imported, updated, duplicates, rows read): every shard's rows, batch by batch."""
    imported = updated = duplicates = rows_read = 0
    read = _ReadPaths()  # into a new gallery, the gallery itself remembers what was read
    checked = zip(shards.paths, shards.headers, strict=True)
    for done, (path, expected) in enumerate(checked, start=1):
        for header, vectors, rows in read_shard(path, batch_rows):
            _check_unchanged(path, header, expected)
            if not creating:
                read.check_and_add(path, rows)
            keep, skipped = _new_rows(gallery, path, rows, creating)
            duplicates += skipped
            rows_read += len(rows)
            if not keep:
                continue
            matrix = _unit(vectors[keep]) if header.dtype == "float16" else vectors[keep]
            items = [_item(rows[i]) for i in keep]
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


class _ReadPaths:
    """The (path, content) pairs read so far, as sorted 64-bit hashes: a path met again with
    other content is refused, whether in the same batch or a later shard."""

    def __init__(self) -> None:
        self.paths = np.zeros(0, np.uint64)
        self.contents = np.zeros(0, np.uint64)

    def check_and_add(self, path: Path, rows: Sequence[ShardRow]) -> None:
        paths = np.array([_hash64(row.path) for row in rows], np.uint64)
        contents = np.array([int(row.sha256[:16], 16) for row in rows], np.uint64)
        at = np.minimum(np.searchsorted(self.paths, paths), max(len(self.paths) - 1, 0))
        if len(self.paths):
            clash = (self.paths[at] == paths) & (self.contents[at] != contents)
            if clash.any():
                _conflict(path, rows[int(np.flatnonzero(clash)[0])])
        merged_paths = np.concatenate([self.paths, paths])
        merged_contents = np.concatenate([self.contents, contents])
        order = np.argsort(merged_paths, kind="stable")
        self.paths, self.contents = merged_paths[order], merged_contents[order]


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _conflict(path: Path, row: ShardRow) -> NoReturn:
    raise GalleryMismatchError(
        f"{path}: {row.path} has other content than in an earlier row of the shards: the "
        "collection changed between the runs that made these shards; embed it again "
        "into a new folder, or remove the stale shards"
    )


def _new_rows(
    gallery: GalleryStore, path: Path, rows: Sequence[ShardRow], creating: bool
) -> tuple[list[int], int]:
    """The positions of ``rows`` to add, and how many are duplicates to skip."""
    present = gallery.digests(row.path for row in rows)
    seen: dict[str, str] = {}
    keep: list[int] = []
    duplicates = 0
    for position, row in enumerate(rows):
        known = seen.get(row.path)
        if known is None:
            known = present.get(row.path)
            if known != row.sha256 and not creating:
                known = None  # absent, or a changed file: added or replaced as `gallery add` does
        if known is None:
            keep.append(position)
            seen[row.path] = row.sha256
        elif known == row.sha256:
            duplicates += 1
        else:
            _conflict(path, row)
    return keep, duplicates


def _unit(vectors: np.ndarray) -> np.ndarray:
    """float16 vectors, widened, back to unit length (as the engine made them)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: np.ndarray = vectors / np.maximum(norms, np.float32(1e-12))
    return unit


def _item(row: ShardRow) -> GalleryItem:
    return GalleryItem(path=row.path, sha256=row.sha256, label=row.label, instance=row.instance)
