"""Write a file whole or not at all, with the mode an ordinary ``open(path, "w")`` would give.

``tempfile.mkstemp`` creates its file 0600 (private), and ``os.replace`` keeps that mode: a
file written through it would be unreadable to the group and others, unlike every other
output. Here the temporary file is created 0666 less the umask, as ``open`` does.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path


def write_text_atomic(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` through a temporary file beside it and ``os.replace``: a
    crash leaves the old file or the new one, never half of one."""
    return write_bytes_atomic(path, [text.encode(encoding)])


def write_bytes_atomic(path: str | os.PathLike[str], chunks: Iterable[bytes]) -> Path:
    """Write ``chunks`` to ``path`` whole or not at all, as :func:`write_text_atomic` does.

    The chunks are streamed, so a writer can note where each lands (an offset index) while a
    large file never sits in memory; if producing a chunk fails, no file appears."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    handle = os.open(temporary, flags, 0o666)  # the umask applies, as it does for open()
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target
