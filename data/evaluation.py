"""Query and gallery sets for evaluation, and the positive/negative policies training needs.

Everything here is deterministic: sets are sorted by path and relevance is a pure function of
the labels, so two evaluations of the same model on the same split give the same numbers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from sketchsearch.data.errors import SplitError
from sketchsearch.data.layouts import Item
from sketchsearch.data.split_file import SplitFile


class Match(StrEnum):
    """What makes a gallery item a positive for a query."""

    CATEGORY = "category"  # any item of the same category
    INSTANCE = "instance"  # the sketch's own photo (paired layouts only)


@dataclass(frozen=True)
class EvaluationSet:
    queries: tuple[Item, ...]
    gallery: tuple[Item, ...]
    query_domain: str
    gallery_domain: str

    def relevance(self, match: Match = Match.CATEGORY) -> np.ndarray:
        """Boolean [queries, gallery]: True where the gallery item is a positive."""
        return relevance_matrix(self.queries, self.gallery, match)


def evaluation_set(
    split: SplitFile, part: str = "test", direction: Sequence[str] | None = None
) -> EvaluationSet:
    """Queries from one domain of ``part``, the gallery from the other, both sorted by path.

    ``direction`` is (query domain, gallery domain); the default is the split's own order,
    sketch→photo for Sketchy. ("photo", "sketch") gives the original research's direction.
    """
    query_domain, gallery_domain = tuple(direction) if direction else split.domains
    if {query_domain, gallery_domain} != set(split.domains) or query_domain == gallery_domain:
        raise SplitError(
            f"direction {query_domain}→{gallery_domain}: use the split's domains "
            f"{split.domains[0]} and {split.domains[1]}"
        )
    items = split.part_items(part)
    queries = tuple(i for i in items if i.domain == query_domain)
    gallery = tuple(i for i in items if i.domain == gallery_domain)
    return EvaluationSet(queries, gallery, query_domain, gallery_domain)


def relevance_matrix(
    queries: Sequence[Item], gallery: Sequence[Item], match: Match = Match.CATEGORY
) -> np.ndarray:
    query_keys = _keys(queries, match)
    gallery_keys = _keys(gallery, match)
    codes = {key: code for code, key in enumerate(sorted(set(query_keys) | set(gallery_keys)))}
    query_codes = np.array([codes[k] for k in query_keys], dtype=np.int64)
    gallery_codes = np.array([codes[k] for k in gallery_keys], dtype=np.int64)
    result: np.ndarray = query_codes[:, None] == gallery_codes[None, :]
    return result


class PairIndex:
    """Positives and negatives for a query among a pool of items of the other domain.

    Positives follow ``match``; negatives are always items of another category, so a negative
    can never be a positive under either policy.
    """

    def __init__(self, pool: Sequence[Item], match: Match = Match.CATEGORY) -> None:
        self.pool = tuple(pool)
        self.match = Match(match)
        _keys(self.pool, self.match)  # fail early on a pool that cannot be matched this way
        by_key: dict[str, list[int]] = defaultdict(list)
        by_category: dict[str, list[int]] = defaultdict(list)
        for index, item in enumerate(self.pool):
            by_key[_key(item, self.match)].append(index)
            by_category[item.category].append(index)
        self._by_key = {k: np.array(v, dtype=np.int64) for k, v in by_key.items()}
        self._by_category = {k: np.array(v, dtype=np.int64) for k, v in by_category.items()}
        self._all = np.arange(len(self.pool), dtype=np.int64)

    def positives(self, query: Item) -> np.ndarray:
        return self._by_key.get(_key(query, self.match), self._all[:0])

    def negatives(self, query: Item) -> np.ndarray:
        same = self._by_category.get(query.category)
        if same is None:
            return self._all
        return np.setdiff1d(self._all, same, assume_unique=True)


def _key(item: Item, match: Match) -> str:
    if match is Match.INSTANCE:
        if item.instance is None:
            raise SplitError(
                f"{item.path}: instance matching needs a paired layout (Sketchy); "
                "use category matching for the generic layout"
            )
        return item.instance
    return item.category


def _keys(items: Sequence[Item], match: Match) -> list[str]:
    return [_key(item, Match(match)) for item in items]
