"""Scored pairs for a ROC: sampled from labelled embeddings, or read from a CSV of scores.

Sampling, documented because the threshold depends on it:

- A positive pair is a query and a gallery item of the same category (with instances given:
  of the same instance). A negative pair is a query and a gallery item of different
  categories. With instances, same-category pairs of different instances are neither: they
  are not wrong matches for a category search and not right ones for an instance search.
- Every positive pair is used, and every negative pair, unless there are more than
  ``max_positives`` / ``max_negatives``; then that many are drawn uniformly without
  replacement, with ``seed``. The draw indexes the pairs without listing them, so a large
  gallery costs memory in proportion to the sample, not to queries × gallery.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sketchsearch.data.errors import ExitCode, SketchsearchError
from sketchsearch.runtime.evaluation.roc import DEFAULT_TARGET_FPR, RocError, RocReport, roc_report

PAIRS_COLUMNS = ("actual", "prediction")  # the original research's CSV: label, score
_CHUNK = 65_536  # pairs scored at once: bounds the gathered [chunk, D] matrices


class PairsFileError(SketchsearchError):
    """A scores CSV that cannot be read, lacks a column, or holds a bad value."""

    exit_code = ExitCode.BAD_INPUT


@dataclass(frozen=True)
class PairSampling:
    max_positives: int = 200_000
    max_negatives: int = 200_000
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_SAMPLING = PairSampling()


@dataclass(frozen=True)
class ScoredPairs:
    labels: np.ndarray  # int64, 1 = a true match
    scores: np.ndarray  # float64 cosine similarities (computed in float32)
    available: dict[str, int]  # pairs of each kind before sampling
    indices: np.ndarray | None = None  # [n, 2] (query, gallery) positions, when sampled


def sample_pairs(
    query_vectors: np.ndarray,
    query_labels: Sequence[str],
    gallery_vectors: np.ndarray,
    gallery_labels: Sequence[str],
    *,
    query_instances: Sequence[str] | None = None,
    gallery_instances: Sequence[str] | None = None,
    sampling: PairSampling = DEFAULT_SAMPLING,
) -> ScoredPairs:
    """Positive and negative pairs (module docstring) with their cosine similarities."""
    queries = _unit(query_vectors, len(query_labels), "query")
    gallery = _unit(gallery_vectors, len(gallery_labels), "gallery")
    if queries.shape[1] != gallery.shape[1]:
        raise RocError(
            f"query vectors have {queries.shape[1]} dimensions, gallery vectors "
            f"{gallery.shape[1]}: embed both with the same model"
        )
    if (query_instances is None) != (gallery_instances is None):
        raise RocError("instance matching needs instances for both queries and gallery items")
    rng = np.random.default_rng(sampling.seed)
    same = query_instances if query_instances is not None else query_labels
    same_g = gallery_instances if gallery_instances is not None else gallery_labels
    pos = _PairSpace(same, same_g, inside=True).draw(sampling.max_positives, rng)
    neg = _PairSpace(query_labels, gallery_labels, inside=False).draw(sampling.max_negatives, rng)
    q_index = np.r_[pos[0], neg[0]]
    g_index = np.r_[pos[1], neg[1]]
    scores = np.empty(q_index.size, dtype=np.float64)
    for start in range(0, q_index.size, _CHUNK):
        rows = slice(start, start + _CHUNK)
        scores[rows] = np.einsum("ij,ij->i", queries[q_index[rows]], gallery[g_index[rows]])
    labels = np.r_[np.ones(pos[0].size, np.int64), np.zeros(neg[0].size, np.int64)]
    available = {"positives": pos[2], "negatives": neg[2]}
    return ScoredPairs(labels, scores, available, np.stack([q_index, g_index], axis=1))


class _PairSpace:
    """Numbered (query, gallery) pairs with equal (``inside``) or different group keys.

    Gallery items are sorted by key, so query i's partners are one block of that order
    (inside) or everything but that block (outside); pair n is found from cumulative counts.
    """

    def __init__(self, query_keys: Sequence[str], gallery_keys: Sequence[str], inside: bool):
        names, codes = np.unique(
            np.r_[np.asarray(gallery_keys, str), np.asarray(query_keys, str)], return_inverse=True
        )
        g_codes, q_codes = codes[: len(gallery_keys)], codes[len(gallery_keys) :]
        self.order = np.argsort(g_codes, kind="stable")
        per_key = np.bincount(g_codes, minlength=names.size)
        self.block_start = (np.cumsum(per_key) - per_key)[q_codes]
        self.block_size = per_key[q_codes]
        self.inside = inside
        counts = self.block_size if inside else len(gallery_keys) - self.block_size
        self.before = np.cumsum(counts) - counts  # pairs of the earlier queries
        self.total = int(counts.sum())

    def draw(self, limit: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
        if self.total <= limit:
            wanted = np.arange(self.total, dtype=np.int64)
        else:
            wanted = np.sort(rng.choice(self.total, size=limit, replace=False))
        query = np.searchsorted(self.before, wanted, side="right") - 1
        offset = wanted - self.before[query]
        if self.inside:
            position = self.block_start[query] + offset
        else:  # skip over the query's own block
            skip = offset >= self.block_start[query]
            position = offset + np.where(skip, self.block_size[query], 0)
        return query.astype(np.int64), self.order[position].astype(np.int64), self.total


def _unit(vectors: np.ndarray, count: int, name: str) -> np.ndarray:
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != count:
        raise RocError(f"{count} {name} labels but {name} vectors of shape {matrix.shape}")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.asarray(matrix / np.maximum(norms, 1e-12))


def read_pairs_csv(path: str | os.PathLike[str]) -> ScoredPairs:
    """A CSV with ``actual`` (1 = a true match, 0 = not) and ``prediction`` (the score)
    columns, as the original research wrote it; other columns (an index, names) are ignored."""
    source = Path(path)
    try:
        with source.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [name.strip() for name in next(reader, [])]
            missing = [name for name in PAIRS_COLUMNS if name not in header]
            if missing:
                raise PairsFileError(
                    f"{source}: no {' or '.join(repr(m) for m in missing)} column (found "
                    f"{', '.join(repr(h) for h in header) or 'no header'}); a scores CSV has "
                    "the columns actual,prediction: 1/0 for a true/false match, and the score"
                )
            columns = [header.index(name) for name in PAIRS_COLUMNS]
            rows = [_parse_row(row, columns, source, reader.line_num) for row in reader if row]
    except UnicodeDecodeError:
        raise PairsFileError(f"{source}: not a text CSV file") from None
    if not rows:
        raise PairsFileError(f"{source}: holds a header but no pairs")
    labels, scores = (np.array(values) for values in zip(*rows, strict=True))
    return ScoredPairs(
        labels.astype(np.int64),
        scores.astype(np.float64),
        {"positives": int(labels.sum()), "negatives": int(len(labels) - labels.sum())},
    )


def _parse_row(row: list[str], columns: list[int], source: Path, line: int) -> tuple[int, float]:
    try:
        actual, prediction = (float(row[i]) for i in columns)
    except (IndexError, ValueError):
        raise PairsFileError(
            f"{source}, line {line}: expected numbers in the actual and prediction columns, "
            f"found {row!r}"
        ) from None
    if actual not in (0.0, 1.0):
        raise PairsFileError(f"{source}, line {line}: actual is {actual:g}; use 1 or 0")
    if not math.isfinite(prediction):
        raise PairsFileError(f"{source}, line {line}: prediction {prediction} is not finite")
    return int(actual), prediction


def roc_from_embeddings(
    query_vectors: np.ndarray,
    query_labels: Sequence[str],
    gallery_vectors: np.ndarray,
    gallery_labels: Sequence[str],
    *,
    query_instances: Sequence[str] | None = None,
    gallery_instances: Sequence[str] | None = None,
    sampling: PairSampling = DEFAULT_SAMPLING,
    target_fpr: float = DEFAULT_TARGET_FPR,
    source: str = "embeddings",
) -> RocReport:
    """The ROC of cosine scores over sampled pairs (module docstring); instance matching when
    instances are given."""
    pairs = sample_pairs(
        query_vectors,
        query_labels,
        gallery_vectors,
        gallery_labels,
        query_instances=query_instances,
        gallery_instances=gallery_instances,
        sampling=sampling,
    )
    described = {
        **sampling.to_dict(),
        "match": "instance" if query_instances is not None else "category",
        "available": pairs.available,
        "queries": len(query_labels),
        "gallery_items": len(gallery_labels),
    }
    return roc_report(
        pairs.labels, pairs.scores, target_fpr=target_fpr, source=source, sampling=described
    )
