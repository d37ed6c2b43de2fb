"""Reading a file a user named, only when it is a regular file, and never blocking.

``open()`` on a FIFO waits for a writer, and a read from a character device may never end.
So the file is opened with ``O_NONBLOCK`` (which makes opening a FIFO return at once), its
kind is taken from the open descriptor (no race with a rename), and anything but a regular
file is refused with a one-line :class:`ImageDecodeError` naming what it is.
"""

from __future__ import annotations

import os
import stat

from sketchsearch.data.errors import ImageDecodeError

MAX_FILE_BYTES = 1 << 30  # 1 GiB: far above any image worth decoding
_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
_CHUNK = 1 << 20

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words ("a FIFO", "a directory", …)."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def read_regular_file(path: str | os.PathLike[str], max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file at ``path`` (symlinks followed), or ImageDecodeError.

    A FIFO, device, socket or directory is refused without blocking, as is a path with a NUL
    byte, and a file larger than ``max_bytes``.
    """
    try:
        descriptor = os.open(path, _FLAGS)
    except ValueError:  # "embedded null byte"
        raise ImageDecodeError(_shown(path), "not a valid path: it holds a NUL byte") from None
    except FileNotFoundError:
        raise ImageDecodeError(path, "file not found") from None
    except OSError as err:  # a socket cannot be opened at all (ENXIO): say what it is
        raise ImageDecodeError(path, _open_problem(path, err)) from None
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            kind = file_kind(mode)
            raise ImageDecodeError(path, f"is {kind}, not an image file")
        os.set_blocking(descriptor, True)
        return _read_all(descriptor, path, max_bytes)
    except OSError as err:
        raise ImageDecodeError(path, f"cannot read: {err.strerror or err}") from None
    finally:
        os.close(descriptor)


def _read_all(descriptor: int, path: str | os.PathLike[str], max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = os.read(descriptor, min(_CHUNK, max_bytes + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:
            raise ImageDecodeError(path, f"larger than {max_bytes} bytes: not read")


def _open_problem(path: str | os.PathLike[str], err: OSError) -> str:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = stat.S_IFREG
    if not stat.S_ISREG(mode):
        return f"is {file_kind(mode)}, not an image file"
    return f"cannot read: {err.strerror or err}"


def _shown(path: str | os.PathLike[str]) -> str:
    """The path with control characters escaped, so that an error stays on one line."""
    return repr(os.fspath(path))[1:-1]


class UnusableName(os.PathLike[str]):
    """A name read from a list that cannot be a path (a NUL byte, bytes that are not UTF-8).

    It stands in the list like any path, shown escaped; reading it fails with ``problem``, so
    the name becomes one failed item and the rest of the batch is answered.
    """

    def __init__(self, raw: bytes, problem: str) -> None:
        self.shown = repr(raw)[2:-1]
        self.problem = problem

    def __fspath__(self) -> str:
        raise ImageDecodeError(self.shown, self.problem)

    def __str__(self) -> str:
        return self.shown


def name_from_line(raw: bytes) -> str | UnusableName:
    """One line of a list of files, stripped, as a path or an :class:`UnusableName`."""
    raw = raw.strip()
    if b"\0" in raw:
        return UnusableName(raw, "not a valid path: it holds a NUL byte")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return UnusableName(raw, "not a valid path: it holds bytes that are not UTF-8")
