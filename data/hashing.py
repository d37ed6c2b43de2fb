"""The SHA-256 of a file, read in chunks: the one place sketchsearch hashes a file on disk.

Galleries key images by it, a model card names its checkpoint by it, benchmarks pin their
downloads with it. Memory stays bounded whatever the file's size. Bytes already in memory are
hashed with ``hashlib.sha256(data)`` where they are.
"""

from __future__ import annotations

import hashlib
import os
from typing import BinaryIO

CHUNK_BYTES = 1 << 20


def stream_sha256(stream: BinaryIO) -> str:
    """The hex SHA-256 of what ``stream`` holds from where it stands to its end."""
    digest = hashlib.sha256()
    for block in iter(lambda: stream.read(CHUNK_BYTES), b""):
        digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The hex SHA-256 of the file at ``path``; OSError when it cannot be read."""
    with open(path, "rb") as stream:
        return stream_sha256(stream)
