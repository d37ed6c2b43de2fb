"""Saving a gallery so that a crash at any point leaves a state that opens and searches.

A commit writes ``index.bin.tmp`` and ``items.sqlite.tmp`` and fsyncs them, then writes and
fsyncs ``manifest.json.tmp``, which records the new files' sizes: that is the commit point.
Then, under the exclusive commit lock, the three are renamed into place, the manifest last.
A crash before ``manifest.json.tmp`` is complete leaves the old files untouched and the commit
undone; a crash after it leaves a complete new generation, which readers use at once
(``committed_view``) and the next writer renames into place (``recover``). See docs/adr/0003.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from sketchsearch.gallery.errors import GalleryCorruptError
from sketchsearch.gallery.locking import COMMIT_LOCK, FileLock
from sketchsearch.gallery.manifest import GalleryManifest

INDEX_FILE = "index.bin"
ITEMS_FILE = "items.sqlite"
MANIFEST_FILE = "manifest.json"
DATA_FILES = (INDEX_FILE, ITEMS_FILE)
TMP = ".tmp"

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
    except BaseException:
        _discard_pending(directory)  # nothing was renamed: the old generation stands
        raise
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
    index_tmp, items_tmp = directory / (INDEX_FILE + TMP), directory / (ITEMS_FILE + TMP)
    save_index(index_tmp)
    fsync_path(index_tmp)
    crash_point("index-written")
    save_items(items_tmp)
    fsync_path(items_tmp)
    crash_point("items-written")
    sizes = {INDEX_FILE: index_tmp.stat().st_size, ITEMS_FILE: items_tmp.stat().st_size}
    final = replace(manifest, files=sizes)
    with (directory / (MANIFEST_FILE + TMP)).open("w", encoding="utf-8") as handle:
        handle.write(final.to_json())
        handle.flush()
        os.fsync(handle.fileno())
    return final


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
        manifest = GalleryManifest.from_json(path.read_text(encoding="utf-8"), str(path))
    except (GalleryCorruptError, OSError, UnicodeDecodeError):
        return None
    for name, size in manifest.files.items():
        candidate = _newest(directory, name)
        if not candidate.exists() or candidate.stat().st_size != size:
            return None
    return manifest


def _newest(directory: Path, name: str) -> Path:
    tmp = directory / (name + TMP)
    return tmp if tmp.exists() else directory / name


def _discard_pending(directory: Path) -> None:
    """Delete leftovers, the manifest first, so a half-deleted set can never look complete."""
    for name in (MANIFEST_FILE, *DATA_FILES):
        for leftover in (directory / (name + TMP), directory / (name + TMP + "-journal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
