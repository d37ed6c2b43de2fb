"""Locks between processes (fcntl) for a gallery folder.

Two lock files: ``.writer.lock`` is held exclusively for a whole read-write session, so there is
one writer at a time (others wait up to a timeout, then get GalleryBusyError); ``.commit.lock``
is held exclusively only while a commit renames files into place, and shared by readers while
they load, so no reader ever loads half a commit. Both holders are brief, so those two wait
without a timeout.

Lock files are dotfiles, so ``cp g/* new/`` leaves them behind. Both are created when missing:
a writer creates its own, and a reader creates ``.commit.lock``; a reader that cannot create
it (a read-only copy) reads without it, as no writer can commit in a folder it cannot write.
A poll for the committed version creates nothing (``create=False``): a service polling every
few seconds must not put a lock file back into a gallery being deleted (``rm -rf`` would
then fail with "Directory not empty"); without the file it reads the manifest alone, which
a commit replaces whole.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from sketchsearch.gallery.errors import GalleryBusyError

WRITER_LOCK = ".writer.lock"
COMMIT_LOCK = ".commit.lock"


class FileLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._descriptor: int | None = None

    def acquire(self, exclusive: bool, timeout: float | None, create: bool = True) -> None:
        """Take the lock; ``timeout=None`` waits as long as it takes. ``create=False`` (shared
        only): a missing lock file is not created, and nothing is locked."""
        descriptor = self._open(exclusive, create)
        if descriptor is None:
            return  # shared, and no lock file to take (create=False, or a read-only folder)
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            if timeout is None:
                fcntl.flock(descriptor, mode)
            else:
                self._poll(descriptor, mode, timeout)
        except BaseException:
            os.close(descriptor)
            raise
        self._descriptor = descriptor
        if exclusive:
            os.ftruncate(descriptor, 0)
            os.write(descriptor, str(os.getpid()).encode())

    def _open(self, exclusive: bool, create: bool) -> int | None:
        if exclusive:
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            return os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            if not create:
                return None
        try:
            return os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o644)
        except OSError as err:
            if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                return None
            raise

    def _poll(self, descriptor: int, mode: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(descriptor, mode | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise GalleryBusyError(
                        f"{self.path.parent}: another process is writing this gallery "
                        f"{self._holder()}; wait for it to finish and retry"
                    ) from None
                time.sleep(0.02)

    def release(self) -> None:
        if self._descriptor is not None:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)
            os.close(self._descriptor)
            self._descriptor = None

    @contextlib.contextmanager
    def held(
        self, exclusive: bool, timeout: float | None = None, create: bool = True
    ) -> Iterator[None]:
        self.acquire(exclusive, timeout, create)
        try:
            yield
        finally:
            self.release()

    def _holder(self) -> str:
        with contextlib.suppress(OSError, ValueError):
            return f"(pid {int(self.path.read_text().strip())})"
        return ""
