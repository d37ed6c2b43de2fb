"""The retriever: an engine and a gallery of the same model family, answering image queries.

A score below the threshold marks a result "no confident match". The threshold is the one
given explicitly, else the one `sketchsearch analyze roc --write-threshold` recorded in the
gallery, else none; every answer says which applied.

With a re-ranking (``runtime/rerank.py``), the search fetches the best ``shortlist`` items (at
least ``k``), re-ranks them with their stored vectors, and returns the top ``k`` of the new
order. Each result keeps its original cosine ``score``, so thresholds and the "no confident
match" rule mean the same with or without re-ranking; only the order (``rank``) changes, and
scores are then no longer sorted. Results beyond the shortlist follow in their original order.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sketchsearch.data import strict_json
from sketchsearch.data.errors import UsageError
from sketchsearch.gallery.manifest import ModelRef
from sketchsearch.gallery.results import SearchResult
from sketchsearch.gallery.store import WARM_K, GalleryStore, warm_vectors
from sketchsearch.runtime.engines.protocol import Engine
from sketchsearch.runtime.model_card import ModelCard
from sketchsearch.runtime.pipeline import load_image
from sketchsearch.runtime.rerank import RerankConfig, rerank

GALLERY_ENV = "SKETCHSEARCH_GALLERY"
DEFAULTS_FILE = "sketchsearch-galleries.json"  # beside the model files: family → gallery
_STORE_REF = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")  # a store reference (qdrant://…)
QUERY_BATCH = 32


def model_ref(card: ModelCard) -> ModelRef:
    """How a gallery records (and checks) the model that made its vectors."""
    return ModelRef(
        family=card.family,
        name=card.backbone,
        dim=card.embed_dim,
        precision=card.precision,
        summary=card.summary(),
    )


@dataclass(frozen=True)
class Match:
    rank: int
    id: int
    path: str
    file: str | None  # the absolute file, when the gallery knows its root
    label: str | None
    score: float
    confident: bool
    sha256: str | None = None  # the item's content hash: a cache key for its image


@dataclass
class Answer:
    query: str
    matches: list[Match] = field(default_factory=list)
    decode_ms: float = 0.0
    embed_ms: float = 0.0
    search_ms: float = 0.0
    rerank_ms: float = 0.0  # re-ranking the shortlist, fetching its vectors included
    error: str | None = None

    @property
    def confident(self) -> bool:
        return any(match.confident for match in self.matches)


@dataclass(frozen=True)
class Threshold:
    value: float | None
    source: str  # "--min-score", "gallery" or "none"


class Retriever:
    def __init__(
        self,
        engine: Engine,
        gallery: GalleryStore,
        min_score: float | None = None,
        reranking: RerankConfig | None = None,
    ) -> None:
        if not engine.card.embeds("query"):
            raise UsageError(
                f"{engine.path}: this file holds the gallery encoder of a model with separate "
                "encoders; query with its .query.onnx"
            )
        if gallery.manifest.live == 0:
            raise UsageError(
                f"{gallery.ref}: the gallery is empty; add images with `sketchsearch gallery add`"
            )
        self.engine = engine
        self.gallery = gallery
        self.reranking = reranking or RerankConfig()
        if min_score is not None:
            self.threshold = Threshold(float(min_score), "--min-score")
        elif gallery.manifest.threshold is not None:
            self.threshold = Threshold(float(gallery.manifest.threshold.value), "gallery")
        else:
            self.threshold = Threshold(None, "none")
        root = gallery.manifest.root
        self._root = Path(root) if root else None
        self.warm_ms = self._warm_up()

    def _warm_up(self) -> float:
        """Run the search path once at open, so that no query pays for it (milliseconds).

        The first search after opening costs more than later ones (hnswlib's first query,
        SQLite preparing the item lookup, numpy's first re-ranking calls); a one-shot
        ``retrieve`` would report that as its search time. Here it is paid at open, outside
        every :class:`Answer`'s timings, with ``retrieve``'s default ``k`` and shortlist.
        """
        tick = time.perf_counter()
        wanted = max(WARM_K, self.reranking.shortlist) if self.reranking.active else WARM_K
        found = self.gallery.warm(wanted)
        if self.reranking.active and found:
            vectors = warm_vectors(1 + found, self.engine.card.embed_dim)
            rerank(self.reranking, vectors[:1], vectors[None, 1:])
        return (time.perf_counter() - tick) * 1000

    def search_files(
        self, paths: Sequence[str | os.PathLike[str]], k: int = 10, ef: int | None = None
    ) -> list[Answer]:
        """One answer per query file, in order; an unreadable file gets an error instead.

        Queries go in batches of ``QUERY_BATCH``, so a folder of thousands stays in bounded
        memory."""
        starts = range(0, len(paths), QUERY_BATCH)
        batches = (paths[start : start + QUERY_BATCH] for start in starts)
        return [answer for answers in self.search_batches(batches, k, ef) for answer in answers]

    def search_batches(
        self,
        batches: Iterable[Sequence[str | os.PathLike[str]]],
        k: int = 10,
        ef: int | None = None,
    ) -> Iterator[list[Answer]]:
        """Each batch's answers as soon as it is searched, so a caller can print them while
        later queries are still being read (``retrieve --queries-from -`` streams)."""
        for paths in batches:
            yield self._search_batch(paths, k, ef)

    def _search_batch(
        self, paths: Sequence[str | os.PathLike[str]], k: int, ef: int | None
    ) -> list[Answer]:
        answers = []
        images, positions = [], []
        for position, path in enumerate(paths):
            loaded = load_image(path, self.engine.card.preprocess)
            answer = Answer(str(path), decode_ms=loaded.seconds * 1000)
            if loaded.image is None:
                answer.error = loaded.problem
            else:
                images.append(loaded.image)
                positions.append(position)
            answers.append(answer)
        if images:
            self._fill([answers[p] for p in positions], np.stack(images), k, ef)
        return answers

    def search_arrays(self, images: np.ndarray, k: int = 10, ef: int | None = None) -> list[Answer]:
        answers = [Answer(f"<array {i}>") for i in range(len(images))]
        self._fill(answers, images, k, ef)
        return answers

    def _fill(self, answers: list[Answer], images: np.ndarray, k: int, ef: int | None) -> None:
        tick = time.perf_counter()
        vectors = self.engine.embed(images)
        embed_ms = (time.perf_counter() - tick) * 1000 / len(answers)  # split evenly per query
        self.answer_vectors(answers, vectors, k, ef, embed_ms=embed_ms)

    def answer_vectors(
        self,
        answers: Sequence[Answer],
        vectors: np.ndarray,
        k: int,
        ef: int | None = None,
        labels: Sequence[str] | None = None,
        threshold: Threshold | None = None,
        embed_ms: float = 0.0,
    ) -> None:
        """Fill ``answers`` for queries embedded already, one vector each.

        The service embeds several requests' images in one engine call, then answers each
        request with its own ``k``, label filter and threshold (default: the retriever's).
        Search times are split evenly over ``answers``; ``embed_ms`` is recorded as given.
        """
        tick = time.perf_counter()
        wanted = max(k, self.reranking.shortlist) if self.reranking.active else k
        results = self.gallery.search(vectors, wanted, ef=ef, filter=labels)
        searched = time.perf_counter()
        orders = self._orders(vectors, results)
        reranked = time.perf_counter()
        share = 1000.0 / len(answers)
        limit = (threshold or self.threshold).value
        for answer, result, order in zip(answers, results, orders, strict=True):
            answer.embed_ms = embed_ms
            answer.search_ms = (searched - tick) * share
            answer.rerank_ms = (reranked - searched) * share
            answer.matches = [
                self._match(rank, result, position, limit)
                for rank, position in enumerate(order[:k].tolist(), start=1)
            ]

    def _match(
        self, rank: int, result: SearchResult, position: int, threshold: float | None
    ) -> Match:
        item, score = result.items[position], float(result.scores[position])
        return Match(
            rank=rank,
            id=int(result.ids[position]),
            path=item.path,
            file=str(self._root / item.path) if self._root else None,
            label=item.label,
            score=score,
            confident=threshold is None or score >= threshold,
            sha256=item.sha256,
        )

    def _orders(self, vectors: np.ndarray, results: list[SearchResult]) -> list[np.ndarray]:
        """Each result's positions in the order to report: the shortlist re-ranked, then the
        rest as found (the search returns as many items for every query)."""
        count = len(results[0].ids) if results else 0
        if not self.reranking.active or count == 0:
            return [np.arange(len(result.ids)) for result in results]
        top = min(self.reranking.shortlist, count)
        ids = np.stack([result.ids[:top] for result in results])
        shortlists = self.gallery.vectors(ids).reshape(len(results), top, -1)
        reranked = rerank(self.reranking, vectors, shortlists)
        rest = np.arange(top, count)
        return [np.concatenate([order, rest]) for order in reranked.order]


def record_default_gallery(model: Path, card: ModelCard, gallery: Path) -> Path:
    """Note ``gallery`` as the default for every model file of this family in ``model``'s
    folder (all precisions and the TensorRT engine share the family).

    The record holds the gallery's path relative to itself, so a folder holding the models and
    their gallery can move (or be mounted elsewhere) and keep its default."""
    from sketchsearch.data.atomic_file import write_text_atomic

    record = model.resolve().parent / DEFAULTS_FILE
    known = _read_defaults(record)
    known[card.family] = Path(os.path.relpath(gallery.resolve(), record.parent)).as_posix()
    # A unique temporary name: two builds recording at once must not write the same file.
    text = strict_json.dumps(known, indent=1, sort_keys=True) + "\n"
    return write_text_atomic(record, text)


def default_gallery(model: Path, card: ModelCard) -> Path | str | None:
    """``$SKETCHSEARCH_GALLERY`` (a folder, or a store reference kept as a string: a Path
    would fold its "//"), else the gallery recorded beside the model for its family
    (relative to the record; an absolute path, as older versions wrote, is read as is)."""
    from_env = os.environ.get(GALLERY_ENV)
    if from_env:
        return from_env if _STORE_REF.match(from_env) else Path(from_env)
    record = model.resolve().parent / DEFAULTS_FILE
    recorded = _read_defaults(record).get(card.family)
    return Path(os.path.normpath(record.parent / recorded)) if recorded else None


def _read_defaults(record: Path) -> dict[str, str]:
    try:
        raw = json.loads(record.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
