"""Embedding many image files: decoding overlaps inference, and a bad file never stops a run.

Worker threads read, hash, decode and preprocess files (OpenCV and onnxruntime release the
GIL) while the engine runs the previous batch; at most ``prefetch`` batches are in flight, so
memory stays bounded however many files there are. Results come back in input order.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sketchsearch.data.errors import ImageDecodeError
from sketchsearch.data.imagefile import read_bytes
from sketchsearch.runtime.engines.protocol import Engine
from sketchsearch.runtime.machine import available_cpus
from sketchsearch.runtime.preprocess import PreprocessConfig, preprocess_bytes

# 32 images per batch up to 224 px: 64-256 saved no CPU per image for the demo model (48 px),
# and a larger first batch delays the first inference.
REFERENCE_BATCH = 32
REFERENCE_PX = 224
MIN_BATCH = 8
MAX_WORKERS = 4


@dataclass(frozen=True)
class PipelineSizes:
    batch_size: int
    workers: int


def default_workers(cpus: int | None = None) -> int:
    """Decode (and hashing) threads: one per usable core, up to ``MAX_WORKERS`` (see below)."""
    return min(MAX_WORKERS, cpus or available_cpus())


def pipeline_sizes(
    input_size: int,
    files: int,
    batch_size: int | None = None,
    workers: int | None = None,
    prefetch: int = 2,
    cpus: int | None = None,
) -> PipelineSizes:
    """Batch and decode-thread counts for embedding ``files`` images: the given ones, else
    chosen from the machine and the model's input size.

    Workers: one decode thread per core the process may use, up to ``MAX_WORKERS``. While the
    first batch decodes the engine has nothing to do, so every core should be decoding; later
    the decoders only run ahead by ``prefetch`` batches. The cap bounds memory: each decode in
    flight may hold up to 1.6 GiB (a 100 MP 16-bit RGBA PNG; README "Errors and exit codes"),
    so 4 workers bound decoding at about 6.5 GiB whatever the core count; ``--workers`` raises
    it where memory allows.

    Batch: 32 up to 224 px; above, fewer (a power of two, at least 8) so that a batch holds no
    more pixels than 32 at 224 px; and small enough that there are at least ``prefetch + 2``
    batches, because inference overlaps decoding only from the second on.
    """
    if batch_size is None:
        scaled = REFERENCE_BATCH * (REFERENCE_PX / max(input_size, REFERENCE_PX)) ** 2
        batch_size = max(MIN_BATCH, 2 ** math.floor(math.log2(scaled)))
        batch_size = max(1, min(batch_size, math.ceil(files / (prefetch + 2))))
    if workers is None:
        workers = default_workers(cpus)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    return PipelineSizes(batch_size, workers)


@dataclass(frozen=True)
class Failure:
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


@dataclass
class EmbedResult:
    vectors: np.ndarray  # [len(done), D], in input order of the files that worked
    done: list[int]  # input positions of the embedded files
    digests: list[str]  # SHA-256 of each embedded file's bytes
    failures: list[Failure] = field(default_factory=list)
    decode_seconds: float = 0.0  # summed over worker threads
    embed_seconds: float = 0.0
    wall_seconds: float = 0.0
    # Bytes of each embedded file, counted from the very bytes that were hashed (``digests``),
    # so that a row's size and SHA-256 always describe the same content.
    sizes: list[int] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return len(self.done) / self.wall_seconds if self.wall_seconds > 0 else 0.0


@dataclass(frozen=True)
class _Loaded:
    image: np.ndarray | None
    digest: str
    problem: str | None
    seconds: float
    size: int = 0  # len() of the bytes hashed into ``digest``


def load_image(path: str | os.PathLike[str], config: PreprocessConfig) -> _Loaded:
    start = time.perf_counter()
    try:
        data = read_bytes(path)
        digest = hashlib.sha256(data).hexdigest()
        image = preprocess_bytes(data, path, config)
    except ImageDecodeError as err:
        return _Loaded(None, "", err.problem, time.perf_counter() - start)
    except OSError as err:
        return _Loaded(None, "", err.strerror or str(err), time.perf_counter() - start)
    return _Loaded(image, digest, None, time.perf_counter() - start, len(data))


def embed_paths(
    engine: Engine,
    paths: Sequence[str | os.PathLike[str]],
    batch_size: int | None = None,
    workers: int | None = None,
    prefetch: int = 2,
    progress: bool | None = None,
    description: str = "embedding",
) -> EmbedResult:
    """Embed every readable file; unreadable ones become :class:`Failure` entries.

    ``batch_size`` and ``workers`` (decode threads) default to :func:`pipeline_sizes`'."""
    config = engine.card.preprocess
    sizes = pipeline_sizes(config.input_size, len(paths), batch_size, workers, prefetch)
    batch_size, workers = sizes.batch_size, sizes.workers
    start = time.perf_counter()
    result = EmbedResult(np.empty((0, engine.card.embed_dim), np.float32), [], [])
    chunks: list[np.ndarray] = []
    bar = _progress(len(paths), description, progress)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        for positions, loaded in _batches(pool, paths, config, batch_size, prefetch):
            good = []
            for position, item in zip(positions, loaded, strict=True):
                result.decode_seconds += item.seconds
                if item.image is None:
                    result.failures.append(Failure(str(paths[position]), item.problem or "?"))
                else:
                    good.append((position, item))
            if good:
                tick = time.perf_counter()
                chunks.append(engine.embed(np.stack([item.image for _, item in good])))  # type: ignore[misc]
                result.embed_seconds += time.perf_counter() - tick
                result.done.extend(position for position, _ in good)
                result.digests.extend(item.digest for _, item in good)
                result.sizes.extend(item.size for _, item in good)
            bar(len(positions))
    bar(0, close=True)
    if chunks:
        result.vectors = np.concatenate(chunks)
    result.wall_seconds = time.perf_counter() - start
    return result


def _batches(
    pool: ThreadPoolExecutor,
    paths: Sequence[str | os.PathLike[str]],
    config: PreprocessConfig,
    batch_size: int,
    prefetch: int,
) -> Iterator[tuple[list[int], list[_Loaded]]]:
    """Batches in order, keeping at most ``prefetch + 1`` batches submitted ahead."""
    pending: deque[tuple[list[int], list[Future[_Loaded]]]] = deque()
    starts = iter(range(0, len(paths), batch_size))

    def submit_next() -> bool:
        begin = next(starts, None)
        if begin is None:
            return False
        positions = list(range(begin, min(begin + batch_size, len(paths))))
        pending.append((positions, [pool.submit(load_image, paths[p], config) for p in positions]))
        return True

    for _ in range(prefetch + 1):
        if not submit_next():
            break
    while pending:
        positions, futures = pending.popleft()
        submit_next()
        yield positions, [future.result() for future in futures]


def _progress(total: int, description: str, enabled: bool | None) -> Callable[..., None]:
    """tqdm on stderr for long runs on a terminal; silent otherwise."""
    show = sys.stderr.isatty() and total > 64 if enabled is None else enabled
    if not show:
        return lambda n, close=False: None
    from tqdm import tqdm

    bar = tqdm(total=total, desc=description, unit="img", file=sys.stderr, leave=False)

    def update(n: int, close: bool = False) -> None:
        bar.update(n)
        if close:
            bar.close()

    return update


def relative_to_root(paths: Sequence[Path], root: Path) -> list[str | None]:
    """Gallery item paths: POSIX, relative to the gallery root (None when outside it).

    A file is named as listed in its folder: a symlink keeps its own name, as ``gallery
    build`` names it, and whether its target is inside the root is ``points_outside``'s call.
    """
    resolved_root = root.resolve()
    out: list[str | None] = []
    for path in paths:
        try:
            out.append((path.parent.resolve() / path.name).relative_to(resolved_root).as_posix())
        except ValueError:
            out.append(None)
    return out


def points_outside(path: Path, resolved_root: Path) -> bool:
    """Whether ``path``, with every symlink followed, lands outside ``resolved_root``."""
    try:
        path.resolve().relative_to(resolved_root)
    except ValueError:
        return True
    return False
