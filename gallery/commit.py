"""Saving a gallery so that a crash at any point leaves a state that opens and searches.

A commit writes ``index.bin.tmp`` and ``items.sqlite.tmp``, checks each (hnswlib's
``save_index`` can write a short file on a full disk without raising, so the savers read back
what they wrote), fsyncs them and their folder, then writes and fsyncs ``manifest.json.tmp``,
which records the new files' sizes and SHA-256 digests: that is the commit point. A full disk,
a quota or a file-size limit before that point is a GalleryWriteError (exit 3), and the
previous generation stays the gallery.
Then, under the exclusive commit lock, the three are renamed into place, the manifest last.
A crash before ``manifest.json.tmp`` is complete leaves the old files untouched and the commit
undone; a crash after it leaves a complete new generation, which readers use at once
(``committed_view``) and the next writer renames into place (``recover``). See docs/adr/0003.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import signal
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from sketchsearch.gallery.errors import GalleryCorruptError, GalleryWriteError
from sketchsearch.gallery.locking import COMMIT_LOCK, FileLock
from sketchsearch.gallery.manifest import FileRecord, GalleryManifest

INDEX_FILE = "index.bin"
ITEMS_FILE = "items.sqlite"
MANIFEST_FILE = "manifest.json"
DATA_FILES = (INDEX_FILE, ITEMS_FILE)
TMP = ".tmp"
# The pending manifest is written under this name, checked and fsynced, and only then renamed
# to manifest.json.tmp: that rename is the commit point, so no reader can see a generation
# whose manifest might still fail to be written whole.
PARTIAL = ".partial"
# The errors of a write that ran out of room: the disk, the user's quota, RLIMIT_FSIZE.
OUT_OF_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

# Fault injection for the crash tests: the process kills itself at the named point.
CRASH_ENV = "SKETCHSEARCH_TEST_CRASH_AT"


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def fsync_path(path: Path) -> None:
    """fsync a file, or a folder (which makes the renames inside it durable)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_generation(
    directory: Path,
    manifest: GalleryManifest,
    save_index: Callable[[Path], None],
    save_items: Callable[[Path], None],
) -> GalleryManifest:
    """Write the data files and the manifest beside the old ones, then rename them in."""
    _discard_pending(directory)
    try:
        final = _write_pending(directory, manifest, save_index, save_items)
    except BaseException as err:
        _discard_pending(directory)  # nothing was renamed: the old generation stands
        previous = manifest.generation - 1
        kept = (
            f"generation {previous} is intact"
            if previous >= 0
            else "no gallery was made (the folder holds no committed state)"
        )
        if isinstance(err, OSError) and err.errno in OUT_OF_ROOM:
            where = Path(err.filename).name if err.filename else "a file"
            raise GalleryWriteError(
                f"{directory}: not saved: {os.strerror(err.errno or 0)} while writing "
                f"{where}; {kept}: free some space and run the command again"
            ) from None
        if isinstance(err, GalleryWriteError):
            raise GalleryWriteError(f"{directory}: not saved: {err}; {kept}") from None
        raise
    crash_point("manifest-partial")
    # The commit point: from here on the new generation stands, whatever fails next.
    os.replace(directory / (MANIFEST_FILE + PARTIAL), directory / (MANIFEST_FILE + TMP))
    fsync_path(directory)  # the pending manifest is durable before any data file is renamed
    crash_point("manifest-written")  # committed: from here on, every open sees the new state
    with FileLock(directory / COMMIT_LOCK).held(exclusive=True):
        _rename_into_place(directory)
    return final


def _write_pending(
    directory: Path,
    manifest: GalleryManifest,
    save_index: Callable[[Path], None],
    save_items: Callable[[Path], None],
) -> GalleryManifest:
    """Each saver writes its file and reads it back (raising GalleryWriteError when it came up
    short); then the file is fsynced and its size and digest recorded in the manifest."""
    records: dict[str, FileRecord] = {}
    for name, save, point in (
        (INDEX_FILE, save_index, "index-written"),
        (ITEMS_FILE, save_items, "items-written"),
    ):
        path = directory / (name + TMP)
        save(path)
        fsync_path(path)
        records[name] = file_record(path)
        crash_point(point)
    fsync_path(directory)  # the new files' names are durable before the manifest names them
    final = replace(manifest, files=records)
    partial = directory / (MANIFEST_FILE + PARTIAL)
    text = final.to_json().encode("utf-8")
    with partial.open("wb") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    if partial.stat().st_size != len(text):  # a short write that did not raise
        raise GalleryWriteError(
            f"{MANIFEST_FILE} was written short: free some space and run the command again"
        )
    return final


def file_record(path: Path) -> FileRecord:
    """Size and SHA-256 of a file as it is on disk (about 0.1 s for 120 MB with SHA-NI)."""
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
        size = os.fstat(handle.fileno()).st_size
    return FileRecord(size=size, sha256=digest)


def verify_files(
    files: dict[str, Path], manifest: GalleryManifest, names: tuple[str, ...] = DATA_FILES
) -> None:
    """Each named file's SHA-256 is the one the manifest recorded (where it recorded one)."""
    for name in names:
        record = manifest.files[name]
        if record.sha256 is not None and file_record(files[name]).sha256 != record.sha256:
            raise GalleryCorruptError(
                f"{files[name]}: its SHA-256 differs from the manifest's: the file was changed "
                "outside sketchsearch; restore it from a copy or rebuild the gallery"
            )


def _rename_into_place(directory: Path) -> None:
    for name in DATA_FILES:
        tmp = directory / (name + TMP)
        if tmp.exists():
            os.replace(tmp, directory / name)
            crash_point(f"{name}-renamed")
    fsync_path(directory)  # the data renames are durable before the manifest names them
    pending = directory / (MANIFEST_FILE + TMP)
    if pending.exists():
        os.replace(pending, directory / MANIFEST_FILE)
        fsync_path(directory)


def recover(directory: Path) -> bool:
    """Finish or discard an interrupted commit; call with the writer lock held.

    Returns True when a complete new generation was rolled forward.
    """
    if pending_manifest(directory) is not None:
        with FileLock(directory / COMMIT_LOCK).held(exclusive=True):
            _rename_into_place(directory)
        return True
    _discard_pending(directory)
    return False


def committed_view(directory: Path) -> tuple[Path, dict[str, Path]]:
    """The manifest and data files of the newest committed generation; hold the commit lock.

    A complete pending manifest is the commit point: its generation is whole (each data file
    is either its .tmp or, once renamed, the final name), whether the writer is still renaming
    or died doing so. Reading it directly means no reader ever waits for a recovery.
    """
    if pending_manifest(directory) is not None:
        return directory / (MANIFEST_FILE + TMP), {
            name: _newest(directory, name) for name in DATA_FILES
        }
    return directory / MANIFEST_FILE, {name: directory / name for name in DATA_FILES}


def pending_manifest(directory: Path) -> GalleryManifest | None:
    """A pending manifest counts only if it parses and every file it names is there, whole."""
    path = directory / (MANIFEST_FILE + TMP)
    try:
        manifest = GalleryManifest.read(path)
    except (GalleryCorruptError, OSError):
        return None
    if set(manifest.files) != set(DATA_FILES):
        return None
    for name, record in manifest.files.items():
        candidate = _newest(directory, name)
        if not candidate.exists() or candidate.stat().st_size != record.size:
            return None
    return manifest


def _newest(directory: Path, name: str) -> Path:
    tmp = directory / (name + TMP)
    return tmp if tmp.exists() else directory / name


def _discard_pending(directory: Path) -> None:
    """Delete leftovers, the manifest first, so a half-deleted set can never look complete."""
    leftovers = [directory / (MANIFEST_FILE + TMP), directory / (MANIFEST_FILE + PARTIAL)]
    for name in DATA_FILES:
        leftovers += [directory / (name + TMP), directory / (name + TMP + "-journal")]
    for leftover in leftovers:
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
