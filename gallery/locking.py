"""Locks between processes (fcntl) for a gallery folder.

Two lock files: ``.writer.lock`` is held exclusively for a whole read-write session, so there is
one writer at a time; ``.commit.lock`` is held exclusively only while a commit renames files into
place, and shared by readers while they load, so no reader ever loads half a commit.
"""

from __future__ import annotations

import contextlib
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

    def acquire(self, exclusive: bool, timeout: float) -> None:
        flags = os.O_RDWR | os.O_CREAT if exclusive else os.O_RDONLY
        try:
            descriptor = os.open(self.path, flags, 0o644)
        except FileNotFoundError:
            if exclusive:
                raise
            return  # a read-only view of a gallery made before lock files: nothing to wait for
        deadline = time.monotonic() + timeout
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        while True:
            try:
                fcntl.flock(descriptor, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(descriptor)
                    raise GalleryBusyError(
                        f"{self.path.parent}: another process is writing this gallery "
                        f"{self._holder()}; wait for it to finish and retry"
                    ) from None
                time.sleep(0.02)
        self._descriptor = descriptor
        if exclusive:
            os.ftruncate(descriptor, 0)
            os.write(descriptor, str(os.getpid()).encode())

    def release(self) -> None:
        if self._descriptor is not None:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)
            os.close(self._descriptor)
            self._descriptor = None

    @contextlib.contextmanager
    def held(self, exclusive: bool, timeout: float = 30.0) -> Iterator[None]:
        self.acquire(exclusive, timeout)
        try:
            yield
        finally:
            self.release()

    def _holder(self) -> str:
        with contextlib.suppress(OSError, ValueError):
            return f"(pid {int(self.path.read_text().strip())})"
        return ""
