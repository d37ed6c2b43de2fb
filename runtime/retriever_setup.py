"""From what a user names (model file, gallery, queries) to a ready retriever.

`retrieve` and any other front end (a service) resolve the gallery the same way: ``--index``,
then ``$SKETCHSEARCH_GALLERY``, then the default recorded beside the model.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from sketchsearch.data.errors import UsageError
from sketchsearch.data.regular_file import UnusableName, name_from_line
from sketchsearch.gallery.store_table import open_gallery
from sketchsearch.runtime.engines.backend_choice import choose_backend
from sketchsearch.runtime.engines.table import open_engine
from sketchsearch.runtime.rerank import RerankConfig
from sketchsearch.runtime.retriever import Retriever, default_gallery, model_ref

T = TypeVar("T")


@dataclass(frozen=True)
class RetrieverConfig:
    """The user's choices for one retriever; ``index`` None means the default gallery."""

    engine: Path
    index: Path | str | None = None  # a folder, or a store reference (qdrant://…)
    provider: str | None = None
    threads: int | None = None
    min_score: float | None = None
    reranking: RerankConfig = field(default_factory=RerankConfig)
    backend: str | None = None  # --backend; None: the recommendation for single queries


def _quiet(_: str) -> None:
    """The default ``notify``: say nothing."""


def open_retriever(
    config: RetrieverConfig, notify: Callable[[str], None] = _quiet
) -> tuple[Retriever, Path | str]:
    """The retriever and its gallery folder; the caller closes its engine and its gallery.

    The backend is ``choose_backend``'s for single queries; ``notify`` gets its one-line note
    (which backend, and why) when there is one.
    """
    choice = choose_backend(
        config.engine, config.backend, "single", config.provider, config.threads
    )
    if choice.note is not None:
        notify(choice.note)
    model = open_engine(
        config.engine,
        provider=config.provider or choice.device,
        threads=config.threads,
        backend=choice.backend,
    )
    try:
        gallery_dir = config.index or default_gallery(config.engine, model.card)
        if gallery_dir is None:
            raise UsageError(
                f"no gallery for {config.engine}: pass --index GALLERY, set "
                "$SKETCHSEARCH_GALLERY, or build one: sketchsearch gallery build --engine "
                f"{config.engine} --images PHOTOS --out GALLERY"
            )
        gallery = open_gallery(gallery_dir, expected_model=model_ref(model.card))
    except BaseException:
        model.close()
        raise
    try:
        return Retriever(model, gallery, config.min_score, config.reranking), gallery_dir
    except BaseException:
        gallery.close()
        model.close()
        raise


def query_paths(
    files: Sequence[Path],
    folder: Path | None = None,
    listed: Iterable[str | bytes] | None = None,
) -> list[Path | UnusableName]:
    """Every query of :func:`query_stream` at once (a caller that needs them all)."""
    return list(query_stream(files, folder, listed))


def query_stream(
    files: Sequence[Path],
    folder: Path | None = None,
    listed: Iterable[str | bytes] | None = None,
) -> Iterator[Path | UnusableName]:
    """Query images named one by one, in a folder, or one per line of a list.

    The named files and the folder are checked now; the list is read as it is consumed, so
    a pipe's first queries can be answered before its last line is written. A listed line
    that cannot be a path (a NUL byte, bytes that are not UTF-8) stays in the stream as an
    :class:`UnusableName`: its query fails and the others are answered.
    """
    named: list[Path | UnusableName] = list(files)
    if folder is not None:
        from sketchsearch.runtime.gallery_build import folder_sources

        named.extend(source.file for source in folder_sources(folder, "--queries"))
    if not named and listed is None:
        raise UsageError(NO_QUERY)
    return _named_then_listed(named, listed)


NO_QUERY = "no query: pass --query IMAGE (repeatable), --queries DIR or --queries-from FILE"


def _named_then_listed(
    named: list[Path | UnusableName], listed: Iterable[str | bytes] | None
) -> Iterator[Path | UnusableName]:
    yield from named
    count = len(named)
    for line in listed if listed is not None else ():
        name = name_from_line(line) if isinstance(line, bytes) else line
        if isinstance(name, UnusableName):
            yield name
        elif name.strip():
            yield Path(name.strip())
        else:
            continue
        count += 1
    if count == 0:
        raise UsageError(NO_QUERY)


def ready_batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Batches of at most ``size`` items, each taken as soon as one item is ready.

    A thread reads ``items`` ahead (at most a few batches) while the caller works: a file
    yields full batches, a slow pipe yields whatever lines have arrived, so its first answers
    do not wait for ``size`` lines or the end of the input. An error while reading is raised
    here, after the batch read before it.
    """
    ready: queue.Queue[T | _End] = queue.Queue(maxsize=4 * size)
    threading.Thread(target=_read_ahead, args=(items, ready), daemon=True).start()
    while True:
        batch: list[T] = []
        item = ready.get()  # wait for the first item of a batch, take the others if ready
        while not isinstance(item, _End):
            batch.append(item)
            if len(batch) == size:
                break
            try:
                item = ready.get_nowait()
            except queue.Empty:
                break
        if batch:
            yield batch
        if isinstance(item, _End):
            if item.error is not None:
                raise item.error
            return


@dataclass(frozen=True)
class _End:
    """The end of the items, or the error that ended them."""

    error: BaseException | None = None


def _read_ahead(items: Iterable[T], ready: queue.Queue[T | _End]) -> None:
    try:
        for item in items:
            ready.put(item)
    except BaseException as err:  # raised again in the caller's thread, by ready_batches
        ready.put(_End(err))
    else:
        ready.put(_End())
