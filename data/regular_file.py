"""Reading a file a user named, only when it is a regular file, and never blocking.

``open()`` on a FIFO waits for a writer, and a read from a character device may never end.
So the file is opened with ``O_NONBLOCK`` (which makes opening a FIFO return at once), its
kind is taken from the open descriptor (no race with a rename), and anything but a regular
file is refused with a one-line :class:`ImageDecodeError` naming what it is.

Memory and time stay bounded: the size from ``fstat`` is checked against a limit before any
byte is read (a 3 GB sparse file named ``.png`` costs nothing), the first bytes can be
checked (an image signature) before the rest is read, and the read itself stops one byte past
the limit in case the file grows meanwhile.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from sketchsearch.data.errors import ImageDecodeError, UsageError

# 256 MiB: any JPEG or WebP within the 100-megapixel pixel limit (a 100 MP JPEG is 5-60 MB),
# and PNG, TIFF or BMP up to about 89 MP even uncompressed (8-bit RGB). The bytes are held
# beside the decoded pixels, so this limit is part of a decode worker's memory; the old 1 GiB
# let a file alone take four times that. SKETCHSEARCH_MAX_IMAGE_BYTES raises it.
DEFAULT_MAX_FILE_BYTES = 256 << 20
MAX_FILE_BYTES = DEFAULT_MAX_FILE_BYTES  # the old name, kept for callers
MAX_FILE_BYTES_ENV = "SKETCHSEARCH_MAX_IMAGE_BYTES"
HEAD_BYTES = 64  # enough for every signature sniffed (WebP's is at bytes 8-12)
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


def max_file_bytes() -> int:
    """The file size limit: ``$SKETCHSEARCH_MAX_IMAGE_BYTES``, read at each call, or 256 MiB.

    Read at call time (not import time) so that a test or a long-lived server sees a change;
    a value that is not a positive whole number of bytes is a usage error, never ignored.
    """
    raw = os.environ.get(MAX_FILE_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_FILE_BYTES
    value = int(raw) if raw.isdigit() else 0
    if value < 1:
        raise UsageError(
            f"{MAX_FILE_BYTES_ENV}={raw!r}: expected a whole number of bytes of at least 1 "
            f"(default {DEFAULT_MAX_FILE_BYTES}, i.e. 256 MiB)"
        )
    return value


def read_regular_file(
    path: str | os.PathLike[str],
    max_bytes: int | None = None,
    check_head: Callable[[bytes], None] | None = None,
) -> bytes:
    """The bytes of the regular file at ``path`` (symlinks followed), or ImageDecodeError.

    A FIFO, device, socket or directory is refused without blocking, as is a path with a NUL
    byte, and a file larger than ``max_bytes`` (default :func:`max_file_bytes`) before any
    byte is read. ``check_head`` sees the first :data:`HEAD_BYTES` bytes before the rest is
    read, and raises to refuse the file.
    """
    limit = max_file_bytes() if max_bytes is None else max_bytes
    try:
        descriptor = os.open(path, _FLAGS)
    except ValueError:  # "embedded null byte"
        raise ImageDecodeError(_shown(path), "not a valid path: it holds a NUL byte") from None
    except FileNotFoundError:
        raise ImageDecodeError(path, "file not found") from None
    except OSError as err:  # a socket cannot be opened at all (ENXIO): say what it is
        raise ImageDecodeError(path, _open_problem(path, err)) from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise ImageDecodeError(path, f"is {file_kind(info.st_mode)}, not an image file")
        _check_size(path, info.st_size, limit)
        os.set_blocking(descriptor, True)
        if check_head is not None:
            check_head(os.pread(descriptor, HEAD_BYTES, 0))
        return _read_all(descriptor, path, info.st_size, limit)
    except OSError as err:
        raise ImageDecodeError(path, f"cannot read: {err.strerror or err}") from None
    finally:
        os.close(descriptor)


def _check_size(path: str | os.PathLike[str], size: int | None, limit: int) -> None:
    """Refuse a file of ``size`` bytes over ``limit``; None: one found over it while reading."""
    if size is None or size > limit:
        found = "" if size is None else f" ({size} bytes)"
        raise ImageDecodeError(
            path,
            f"larger than {limit} bytes{found}: not read "
            f"(the limit is set by {MAX_FILE_BYTES_ENV})",
        )


def _read_all(descriptor: int, path: str | os.PathLike[str], size: int, limit: int) -> bytes:
    """The whole file, in one read when its size is as ``fstat`` said (no copy to join).

    A file that grew past ``limit`` since is refused; ``/proc`` files report size 0.
    """
    chunks: list[bytes] = []
    total, want = 0, size + 1
    while True:
        chunk = os.read(descriptor, min(want, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)  # one chunk: returned as is
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            _check_size(path, None, limit)
        want = _CHUNK


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
