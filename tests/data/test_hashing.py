"""file_sha256 against hashlib on real files, including one larger than a read chunk."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest

from sketchsearch.data import hashing
from sketchsearch.data.hashing import file_sha256, stream_sha256


def test_matches_hashlib_on_empty_small_and_multi_chunk_files(tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(0, 256, 2 * hashing.CHUNK_BYTES + 7, np.uint8)
    for name, content in [("empty", b""), ("small", b"abc"), ("big", data.tobytes())]:
        path = tmp_path / name
        path.write_bytes(content)
        assert file_sha256(path) == hashlib.sha256(content).hexdigest()
    assert file_sha256(tmp_path / "small") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # FIPS 180-2 "abc"
    )


def test_reads_in_bounded_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashing, "CHUNK_BYTES", 4)
    reads: list[int] = []

    class Counting(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            reads.append(-1 if size is None else size)
            return super().read(size)

    assert stream_sha256(Counting(b"0123456789")) == hashlib.sha256(b"0123456789").hexdigest()
    assert reads and all(0 < size <= 4 for size in reads)


def test_a_stream_is_hashed_from_where_it_stands() -> None:
    stream = io.BytesIO(b"headerbody")
    stream.seek(6)
    assert stream_sha256(stream) == hashlib.sha256(b"body").hexdigest()


def test_a_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        file_sha256(tmp_path / "none.bin")
