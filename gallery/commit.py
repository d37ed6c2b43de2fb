"""Saving a gallery so that a crash at any point leaves a state that opens and searches.

A commit writes ``index.bin.tmp`` and ``items.sqlite.tmp`` and fsyncs them, then writes and
fsyncs ``manifest.json.tmp``, which records the new files' sizes. Only then, under the
exclusive commit lock, are the three renamed into place, the manifest last. A crash before
``manifest.json.tmp`` is complete leaves the old files untouched; a crash after it leaves a
complete new generation that the next open rolls forward. See docs/adr/0003.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
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


def fsync_file(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_dir(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
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
    index_tmp, items_tmp = directory / (INDEX_FILE + TMP), directory / (ITEMS_FILE + TMP)
    save_index(index_tmp)
    fsync_file(index_tmp)
    crash_point("index-written")
    save_items(items_tmp)
    crash_point("items-written")
    sizes = {INDEX_FILE: index_tmp.stat().st_size, ITEMS_FILE: items_tmp.stat().st_size}
    final = GalleryManifest(**{**manifest.__dict__, "files": sizes})
    manifest_tmp = directory / (MANIFEST_FILE + TMP)
    _write_text(manifest_tmp, final.to_json())
    crash_point("manifest-written")
    with FileLock(directory / COMMIT_LOCK).held(exclusive=True):
        _rename_into_place(directory)
    return final


def _rename_into_place(directory: Path) -> None:
    for name in (*DATA_FILES, MANIFEST_FILE):
        tmp = directory / (name + TMP)
        if tmp.exists():
            os.replace(tmp, directory / name)
            crash_point(f"{name}-renamed")
    fsync_dir(directory)


def recover(directory: Path) -> bool:
    """Finish or discard an interrupted commit; call with the writer lock held.

    Returns True when a complete new generation was rolled forward.
    """
    manifest_tmp = directory / (MANIFEST_FILE + TMP)
    pending = manifest_tmp.exists() and _complete_manifest(manifest_tmp, directory)
    if pending:
        with FileLock(directory / COMMIT_LOCK).held(exclusive=True):
            _rename_into_place(directory)
        return True
    for name in (*DATA_FILES, MANIFEST_FILE):
        with contextlib.suppress(FileNotFoundError):
            (directory / (name + TMP)).unlink()
    return False


def needs_recovery(directory: Path) -> bool:
    return any((directory / (name + TMP)).exists() for name in (*DATA_FILES, MANIFEST_FILE))


def _complete_manifest(path: Path, directory: Path) -> bool:
    """A pending manifest counts only if it parses and every file it names is there, whole."""
    try:
        manifest = GalleryManifest.from_json(path.read_text(encoding="utf-8"), str(path))
    except (GalleryCorruptError, OSError, UnicodeDecodeError):
        return False
    for name, size in manifest.files.items():
        tmp, final = directory / (name + TMP), directory / name
        candidate = tmp if tmp.exists() else final
        if not candidate.exists() or candidate.stat().st_size != size:
            return False
    return True


def _write_text(path: Path, text: str) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
