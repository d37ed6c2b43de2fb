"""From what a user names (model file, gallery, queries) to a ready retriever.

`retrieve` and any other front end (a service) resolve the gallery the same way: ``--index``,
then ``$SKETCHSEARCH_GALLERY``, then the default recorded beside the model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sketchsearch.data.errors import UsageError
from sketchsearch.data.regular_file import UnusableName, name_from_line
from sketchsearch.gallery.store_table import open_gallery
from sketchsearch.runtime.engines.table import open_engine
from sketchsearch.runtime.rerank import RerankConfig
from sketchsearch.runtime.retriever import Retriever, default_gallery, model_ref


@dataclass(frozen=True)
class RetrieverConfig:
    """The user's choices for one retriever; ``index`` None means the default gallery."""

    engine: Path
    index: Path | None = None
    provider: str | None = None
    threads: int | None = None
    min_score: float | None = None
    reranking: RerankConfig = field(default_factory=RerankConfig)


def open_retriever(config: RetrieverConfig) -> tuple[Retriever, Path]:
    """The retriever and its gallery folder; the caller closes its engine and its gallery."""
    model = open_engine(config.engine, provider=config.provider, threads=config.threads)
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
    """Query images named one by one, in a folder, or one per line of a list.

    A listed line that cannot be a path (a NUL byte, bytes that are not UTF-8) stays in the
    list as an :class:`UnusableName`: its query fails and the others are answered.
    """
    paths: list[Path | UnusableName] = list(files)
    if folder is not None:
        from sketchsearch.runtime.gallery_build import folder_sources

        paths.extend(source.file for source in folder_sources(folder, "--queries"))
    if listed is not None:
        for line in listed:
            name = name_from_line(line) if isinstance(line, bytes) else line
            if isinstance(name, UnusableName):
                paths.append(name)
            elif name.strip():
                paths.append(Path(name.strip()))
    if not paths:
        raise UsageError(
            "no query: pass --query IMAGE (repeatable), --queries DIR or --queries-from FILE"
        )
    return paths
