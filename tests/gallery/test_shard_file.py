"""Embedding shards on disk: a round trip keeps every row, and damaged or foreign files are refused.

The vectors are checked against what was written (float16 within its rounding), and each
refusal is shown to depend on the damage: the same file undamaged reads.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from vectors import clustered, model

from sketchsearch.gallery.errors import GalleryCorruptError, GalleryMismatchError
from sketchsearch.gallery.manifest import GallerySource
from sketchsearch.gallery.shard_file import (
    METADATA_KEY,
    ShardHeader,
    ShardRow,
    check_same_family,
    list_shards,
    read_header,
    read_shard,
    shard_name,
    write_shard,
)

DIM = 16


def rows(n: int) -> list[ShardRow]:
    return [
        ShardRow(
            path=f"c{i % 3}/img{i:03d}.png",
            sha256=hashlib.sha256(str(i).encode()).hexdigest(),
            size=100 + i,
            label=f"c{i % 3}" if i % 4 else None,
            instance=f"i{i}" if i % 2 else None,
        )
        for i in range(n)
    ]


def header(n: int, dtype: str = "float32", family: str = "family-a", index: int = 0) -> ShardHeader:
    return ShardHeader(
        model=model(family, dim=DIM),
        preprocess={"input_size": 48, "mean": [0.5, 0.5, 0.5]},
        root="/data/collection",
        source=GallerySource(kind="folder"),
        dtype=dtype,
        index=index,
        plan="plan-1",
        rows=n,
    )


def read_all(path: Path, batch_rows: int = 7) -> tuple[ShardHeader, np.ndarray, list[ShardRow]]:
    headers, chunks, found_rows = [], [], []
    for found_header, vectors, batch in read_shard(path, batch_rows=batch_rows):
        headers.append(found_header)
        chunks.append(vectors)
        found_rows.extend(batch)
    assert headers
    return headers[0], np.concatenate(chunks), found_rows


@pytest.mark.parametrize(("dtype", "tolerance"), [("float32", 0.0), ("float16", 1e-3)])
def test_a_shard_round_trips_every_row_and_the_header(
    tmp_path: Path, dtype: str, tolerance: float
) -> None:
    vectors = clustered(20, DIM)
    written = write_shard(tmp_path / shard_name(3), header(20, dtype, index=3), vectors, rows(20))
    got_header, got_vectors, got_rows = read_all(written)
    assert got_header == header(20, dtype, index=3)
    assert got_rows == rows(20)
    assert got_vectors.dtype == np.float32
    np.testing.assert_allclose(got_vectors, vectors, atol=tolerance, rtol=0)
    assert list_shards(tmp_path) == [written]
    assert read_header(written).rows == 20


def test_float16_shards_are_half_the_vector_bytes(tmp_path: Path) -> None:
    vectors = clustered(2000, DIM)
    sizes = {
        dtype: write_shard(tmp_path / f"{dtype}.parquet", header(2000, dtype), vectors, rows(2000))
        .stat()
        .st_size
        for dtype in ("float32", "float16")
    }
    assert sizes["float16"] < 0.8 * sizes["float32"]


def test_temporary_and_foreign_files_are_not_shards(tmp_path: Path) -> None:
    write_shard(tmp_path / shard_name(1), header(2, index=1), clustered(2, DIM), rows(2))
    write_shard(tmp_path / shard_name(10), header(2, index=10), clustered(2, DIM), rows(2))
    (tmp_path / f".{shard_name(2)}.0123abcd.tmp").write_bytes(b"half a shard")
    (tmp_path / "notes.parquet").write_bytes(b"x")
    (tmp_path / "failures-00001.jsonl").write_text("")
    assert [p.name for p in list_shards(tmp_path)] == [shard_name(1), shard_name(10)]


def test_a_failed_write_leaves_no_shard_and_no_temporary_file(tmp_path: Path) -> None:
    bad = clustered(3, DIM)
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        write_shard(tmp_path / shard_name(0), header(3), bad, rows(3))
    with pytest.raises(ValueError, match="shape"):
        write_shard(tmp_path / shard_name(0), header(3), clustered(2, DIM), rows(3))
    assert list(tmp_path.iterdir()) == []


def test_a_truncated_shard_is_a_one_line_error(tmp_path: Path) -> None:
    written = write_shard(tmp_path / shard_name(0), header(50), clustered(50, DIM), rows(50))
    read_all(written)  # intact, it reads
    data = written.read_bytes()
    written.write_bytes(data[: len(data) // 2])
    with pytest.raises(GalleryCorruptError, match=r"shard-00000\.parquet") as err:
        read_all(written)
    assert "\n" not in str(err.value)


def test_a_foreign_parquet_file_is_refused(tmp_path: Path) -> None:
    foreign = tmp_path / shard_name(0)
    pq.write_table(pa.table({"path": ["a.png"], "x": [1]}), foreign)
    with pytest.raises(GalleryCorruptError, match="without a sketchsearch shard header"):
        read_header(foreign)


def _rewrite_metadata(path: Path, change: dict[str, object]) -> None:
    table = pq.read_table(path)
    meta = header(table.num_rows)
    text = replace(meta, **change).to_json()  # type: ignore[arg-type]
    pq.write_table(table.replace_schema_metadata({METADATA_KEY: text.encode()}), path)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"model": model(dim=DIM + 1)}, "header's dimension"),
        ({"rows": 99}, "the header says 99"),
        ({"dtype": "float16"}, "header's dimension"),
        ({"dtype": "int8"}, "not one of"),
    ],
)
def test_a_header_that_disagrees_with_the_data_is_refused(
    tmp_path: Path, change: dict[str, object], problem: str
) -> None:
    written = write_shard(tmp_path / shard_name(0), header(5), clustered(5, DIM), rows(5))
    _rewrite_metadata(written, {})
    read_all(written)  # the same rewrite without the damage reads
    _rewrite_metadata(written, change)
    with pytest.raises(GalleryCorruptError, match=problem):
        read_all(written)


@pytest.mark.parametrize("hostile", ["/etc/passwd", "../outside.png", "a/../../b.png", ""])
def test_a_row_path_outside_the_root_is_refused(tmp_path: Path, hostile: str) -> None:
    bad_rows = rows(3)
    bad_rows[1] = replace(bad_rows[1], path=hostile)
    written = write_shard(tmp_path / shard_name(0), header(3), clustered(3, DIM), bad_rows)
    with pytest.raises(GalleryCorruptError, match="not relative to the root"):
        read_all(written)


def test_shards_of_two_model_families_are_refused_together(tmp_path: Path) -> None:
    a = tmp_path / "a.parquet"
    b = tmp_path / "b.parquet"
    write_shard(a, header(2), clustered(2, DIM), rows(2))
    write_shard(b, header(2, family="family-b"), clustered(2, DIM), rows(2))
    assert check_same_family([(a, read_header(a)), (a, read_header(a))]).family == "family-a"
    with pytest.raises(GalleryMismatchError, match="different model families"):
        check_same_family([(a, read_header(a)), (b, read_header(b))])
