"""Embedding shards: one Parquet file per slice of a collection, whole or absent.

``sketchsearch embed`` writes them (here or on Ray workers) and ``gallery import`` builds a
gallery from them without embedding again, as clip-retrieval's embedding shards feed its index.
A shard holds, per image, the vector (float32, or float16 on request) and the facts a gallery
item needs: the path relative to the collection root, the label, the instance, the content
SHA-256 and the size in bytes. Its Parquet key-value metadata holds a :class:`ShardHeader`: the
model that made the vectors (its family binds the shard, as a gallery is bound), the card's
preprocessing, the collection root, what the images are, and the run's plan fingerprint (shards
of one run share it, so a rerun never mixes slicings).

A shard is written to a hidden temporary name beside its final one, flushed, and renamed: a
killed writer leaves no file that looks like a shard. Readers check the header, the schema and
every vector, so a damaged or foreign Parquet file is a one-line error, never wrong vectors.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sketchsearch.data.errors import UsageError
from sketchsearch.data.strict_json import dumps
from sketchsearch.gallery.errors import GalleryCorruptError, GalleryMismatchError
from sketchsearch.gallery.manifest import GallerySource, ModelRef

SHARD_FORMAT = "sketchsearch.shard"
SHARD_FORMAT_VERSION = 1
METADATA_KEY = b"sketchsearch.shard"
SHARD_DTYPES = ("float32", "float16")
SHARD_NAME = re.compile(r"^shard-(\d{5,})\.parquet$")
COLUMNS = ("path", "label", "instance", "sha256", "size", "vector")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Rows per record batch when reading: bounds memory whatever a shard's size.
READ_BATCH_ROWS = 65_536


def shard_name(index: int) -> str:
    """``shard-00042.parquet``: names sort in shard order up to 100,000 shards."""
    if index < 0:
        raise ValueError(f"shard index must be >= 0, not {index}")
    return f"shard-{index:05d}.parquet"


@dataclass(frozen=True)
class ShardRow:
    """One embedded image, as a gallery item will record it."""

    path: str  # POSIX, relative to the header's root
    sha256: str
    size: int
    label: str | None = None
    instance: str | None = None


@dataclass(frozen=True)
class ShardHeader:
    """What every row of a shard shares: who made the vectors, from what, in which run."""

    model: ModelRef
    preprocess: dict[str, Any]  # the model card's preprocessing, as the card records it
    root: str | None  # the collection root the row paths are relative to
    source: GallerySource | None  # what the images are (a split's part and domain, a folder)
    dtype: str  # of the stored vectors: "float32" or "float16"
    index: int  # this shard's number in its run
    plan: str  # fingerprint of the run's listing and slicing: shards of one run share it
    rows: int
    format: str = SHARD_FORMAT
    version: int = SHARD_FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # runner facts, for people only

    def to_json(self) -> str:
        return str(dumps(asdict(self), sort_keys=True))

    @classmethod
    def from_json(cls, text: bytes | str, where: str) -> ShardHeader:
        try:
            raw = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise GalleryCorruptError(f"{where}: shard header is not JSON ({err})") from None
        if not isinstance(raw, dict) or raw.get("format") != SHARD_FORMAT:
            raise GalleryCorruptError(f"{where}: not a sketchsearch embedding shard")
        if raw.get("version") != SHARD_FORMAT_VERSION:
            raise GalleryCorruptError(
                f"{where}: shard format version {raw.get('version')!r}; this sketchsearch "
                f"reads version {SHARD_FORMAT_VERSION}"
            )
        try:
            model = ModelRef.from_dict(raw["model"], where)
            source = (
                None if raw["source"] is None else GallerySource.from_dict(raw["source"], where)
            )
            header = cls(
                model=model,
                preprocess=dict(raw["preprocess"]),
                root=raw["root"],
                source=source,
                dtype=str(raw["dtype"]),
                index=int(raw["index"]),
                plan=str(raw["plan"]),
                rows=int(raw["rows"]),
                extra=dict(raw.get("extra") or {}),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise GalleryCorruptError(f"{where}: shard header is incomplete ({err})") from None
        if header.dtype not in SHARD_DTYPES:
            raise GalleryCorruptError(
                f"{where}: vector dtype {header.dtype!r} is not one of {SHARD_DTYPES}"
            )
        if header.rows < 0 or header.index < 0:
            raise GalleryCorruptError(f"{where}: negative rows or index in the shard header")
        if header.root is not None and not isinstance(header.root, str):
            raise GalleryCorruptError(f"{where}: shard root must be a string or null")
        return header


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError(
            "embedding shards are Parquet files and need pyarrow: "
            "pip install 'sketchsearch[shards]'"
        ) from None
    return pa, pq


def write_shard(
    path: str | os.PathLike[str],
    header: ShardHeader,
    vectors: np.ndarray,
    rows: Sequence[ShardRow],
) -> Path:
    """Write one shard whole or not at all; ``vectors[i]`` belongs to ``rows[i]``."""
    pa, pq = _pyarrow()
    target = Path(path)
    dim = header.model.dim
    if vectors.ndim != 2 or vectors.shape != (len(rows), dim):
        raise ValueError(f"vectors of shape {vectors.shape} for {len(rows)} rows of dim {dim}")
    if header.rows != len(rows):
        raise ValueError(f"header says {header.rows} rows, {len(rows)} given")
    # Checked after the cast: a float32 value beyond float16's range (65504) becomes inf.
    with np.errstate(over="ignore"):
        stored = np.ascontiguousarray(vectors, dtype=np.dtype(header.dtype))
    if not np.isfinite(stored).all():
        raise ValueError(f"{target}: refusing to write non-finite {header.dtype} vectors")
    value_type = pa.float16() if header.dtype == "float16" else pa.float32()
    vector_column = pa.FixedSizeListArray.from_arrays(
        pa.array(stored.reshape(-1), type=value_type), dim
    )
    table = pa.table(
        {
            "path": pa.array([r.path for r in rows], pa.string()),
            "label": pa.array([r.label for r in rows], pa.string()),
            "instance": pa.array([r.instance for r in rows], pa.string()),
            "sha256": pa.array([r.sha256 for r in rows], pa.string()),
            "size": pa.array([r.size for r in rows], pa.int64()),
            "vector": vector_column,
        }
    ).replace_schema_metadata({METADATA_KEY: header.to_json().encode()})
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    try:
        pq.write_table(table, temporary, row_group_size=READ_BATCH_ROWS)  # bounded reads
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)
    return target


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (a power cut after it keeps the shard)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def list_shards(folder: str | os.PathLike[str]) -> list[Path]:
    """The finished shards in ``folder``, in shard order (temporary files are not shards)."""
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"{root}: not a folder of embedding shards")
    found = [p for p in root.iterdir() if SHARD_NAME.match(p.name) and p.is_file()]
    return sorted(found, key=lambda p: int(SHARD_NAME.match(p.name).group(1)))  # type: ignore[union-attr]


def _open(path: Path) -> Any:
    _, pq = _pyarrow()
    import pyarrow as pa

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise GalleryCorruptError(f"{path}: not a readable Parquet shard ({err})") from None


def read_header(path: str | os.PathLike[str]) -> ShardHeader:
    """The header of one shard, after checking the schema matches it."""
    target = Path(path)
    parquet = _open(target)
    return _checked_header(target, parquet)


def _checked_header(path: Path, parquet: Any) -> ShardHeader:
    import pyarrow as pa

    schema = parquet.schema_arrow
    metadata = schema.metadata or {}
    if METADATA_KEY not in metadata:
        raise GalleryCorruptError(f"{path}: a Parquet file without a sketchsearch shard header")
    header = ShardHeader.from_json(metadata[METADATA_KEY], str(path))
    if tuple(schema.names) != COLUMNS:
        raise GalleryCorruptError(f"{path}: shard columns {schema.names}, expected {list(COLUMNS)}")
    vector_type = schema.field("vector").type
    value_type = pa.float16() if header.dtype == "float16" else pa.float32()
    if not (
        pa.types.is_fixed_size_list(vector_type)
        and vector_type.list_size == header.model.dim
        and vector_type.value_type == value_type
    ):
        raise GalleryCorruptError(
            f"{path}: vector column {vector_type} does not hold {header.dtype} vectors of the "
            f"header's dimension {header.model.dim}"
        )
    if parquet.metadata.num_rows != header.rows:
        raise GalleryCorruptError(
            f"{path}: {parquet.metadata.num_rows} rows, the header says {header.rows}"
        )
    return header


def read_shard(
    path: str | os.PathLike[str], batch_rows: int = READ_BATCH_ROWS
) -> Iterator[tuple[ShardHeader, np.ndarray, list[ShardRow]]]:
    """The shard's rows in batches of at most ``batch_rows``: (header, float32 vectors, rows).

    Every batch is checked: finite vectors, a SHA-256 per row, a relative path.
    """
    import pyarrow as pa

    target = Path(path)
    parquet = _open(target)
    header = _checked_header(target, parquet)
    dim = header.model.dim
    try:
        for batch in parquet.iter_batches(batch_size=batch_rows):
            vectors = (
                batch.column("vector").values.to_numpy(zero_copy_only=False).reshape(-1, dim)
            ).astype(np.float32, copy=False)
            if not np.isfinite(vectors).all():
                raise GalleryCorruptError(f"{target}: non-finite values in the vectors")
            columns = {name: batch.column(name).to_pylist() for name in COLUMNS[:-1]}
            rows = [
                ShardRow(path=p, sha256=s, size=n, label=lab, instance=ins)
                for p, lab, ins, s, n in zip(
                    columns["path"],
                    columns["label"],
                    columns["instance"],
                    columns["sha256"],
                    columns["size"],
                    strict=True,
                )
            ]
            for row in rows:
                _check_row(target, row)
            yield header, vectors, rows
    except pa.ArrowException as err:
        raise GalleryCorruptError(f"{target}: damaged shard ({err})") from None


def _check_row(path: Path, row: ShardRow) -> None:
    if (
        not isinstance(row.path, str)
        or not row.path
        or row.path.startswith("/")
        or ".." in row.path.split("/")
    ):
        raise GalleryCorruptError(f"{path}: row path {row.path!r} is not relative to the root")
    if not isinstance(row.sha256, str) or not _SHA256.match(row.sha256):
        raise GalleryCorruptError(f"{path}: row {row.path!r} has no SHA-256")
    if not isinstance(row.size, int) or row.size < 0:
        raise GalleryCorruptError(f"{path}: row {row.path!r} has no size")


def check_same_family(headers: Sequence[tuple[Path, ShardHeader]]) -> ModelRef:
    """The one model family all ``headers`` share; mixing families is refused (exit 4)."""
    if not headers:
        raise UsageError("no embedding shards")
    first_path, first = headers[0]
    for path, header in headers[1:]:
        if header.model.family != first.model.family or header.model.dim != first.model.dim:
            raise GalleryMismatchError(
                f"{path}: made by model {header.model.describe()}, but {first_path} by "
                f"{first.model.describe()}: shards of different model families cannot be mixed"
            )
    return first.model
