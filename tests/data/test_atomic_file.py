"""The atomic writer: whole or not at all, streamed, with an ordinary file's mode."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sketchsearch.data.atomic_file import write_bytes_atomic, write_text_atomic


def test_chunks_are_streamed_into_one_file_with_the_umasks_mode(tmp_path: Path) -> None:
    target = write_bytes_atomic(tmp_path / "out.bin", (bytes([i]) * 3 for i in range(4)))
    assert target.read_bytes() == b"\x00\x00\x00\x01\x01\x01\x02\x02\x02\x03\x03\x03"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert write_text_atomic(tmp_path / "t.txt", "héllo\n").read_bytes() == "héllo\n".encode()


def test_a_chunk_that_fails_leaves_the_old_file_and_no_leftover(tmp_path: Path) -> None:
    target = tmp_path / "listing.jsonl"
    target.write_bytes(b"old\n")

    def chunks() -> Iterator[bytes]:
        yield b"new, half written\n"
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_bytes_atomic(target, chunks())
    assert target.read_bytes() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["listing.jsonl"]
