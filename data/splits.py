"""Deterministic train/val/test splits that cannot leak between parts.

``soft`` (unseen images) splits instances inside every category: a photo and all its sketches
always land in the same part. ``hard`` (unseen categories, zero-shot) splits whole categories.
Every shuffle is seeded from (seed, category), and every list is sorted first, so the result
depends only on the seed and the file names, never on file-system order.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from sketchsearch.data.errors import SplitError
from sketchsearch.data.layouts import Collection, Item

PARTS = ("train", "val", "test")
POLICIES = ("soft", "hard")
SMALL_CATEGORY_RULES = ("error", "train", "drop")


@dataclass(frozen=True)
class SplitConfig:
    policy: str = "soft"
    seed: int = 0
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    test_categories: tuple[str, ...] | None = None  # hard policy: fixed held-out categories
    small_categories: str = "error"  # soft policy: what to do with a category too small

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise SplitError(f"unknown split policy {self.policy!r}: use soft or hard")
        if self.small_categories not in SMALL_CATEGORY_RULES:
            raise SplitError(
                f"unknown --small-categories rule {self.small_categories!r}: "
                f"use {', '.join(SMALL_CATEGORY_RULES)}"
            )
        fractions = self.fractions
        if len(fractions) != 3 or any(f < 0 or not math.isfinite(f) for f in fractions):
            raise SplitError(f"fractions {fractions}: give three non-negative numbers")
        if abs(sum(fractions) - 1.0) > 1e-6:
            raise SplitError(f"fractions {fractions} sum to {sum(fractions):g}, not 1")
        if fractions[0] == 0:
            raise SplitError(f"fractions {fractions}: the train fraction must be above 0")
        if self.test_categories is not None and self.policy != "hard":
            raise SplitError("--classes-file fixes held-out categories: use it with --policy hard")


@dataclass(frozen=True)
class SplitResult:
    """Which part every item went to, and the categories set aside by the small-category rule."""

    parts: Mapping[str, tuple[Item, ...]]
    category_parts: Mapping[str, tuple[str, ...]]  # categories present in each part
    small_categories: Mapping[str, str] = field(default_factory=dict)


def make_split(collection: Collection, config: SplitConfig) -> SplitResult:
    if not collection.items:
        raise SplitError(f"{collection.root}: no usable images to split")
    small: dict[str, str] = {}
    if config.policy == "hard":
        assignment = _hard_assignment(collection, config)
    else:
        assignment, small = _soft_assignment(collection, config)
    parts: dict[str, list[Item]] = {part: [] for part in PARTS}
    categories: dict[str, set[str]] = {part: set() for part in PARTS}
    for item in collection.items:
        part = assignment.get(_unit_of(item, config.policy))
        if part is not None:
            parts[part].append(item)
            categories[part].add(item.category)
    return SplitResult(
        parts={part: tuple(items) for part, items in parts.items()},
        category_parts={part: tuple(sorted(names)) for part, names in categories.items()},
        small_categories=small,
    )


def allocate(count: int, fractions: Sequence[float]) -> list[int]:
    """Split ``count`` by ``fractions`` with largest-remainder rounding.

    Every part with a non-zero fraction gets at least one unit (taken from the largest part),
    so no part is silently empty. The caller checks ``count`` is large enough for that.
    """
    exact = [count * f for f in fractions]
    sizes = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: (-(exact[i] - sizes[i]), i))
    for i in by_remainder[: count - sum(sizes)]:
        sizes[i] += 1
    for i, fraction in enumerate(fractions):
        if fraction > 0 and sizes[i] == 0:
            largest = max(range(len(sizes)), key=lambda j: (sizes[j], -j))
            sizes[largest] -= 1
            sizes[i] += 1
    return sizes


def minimum_units(fractions: Sequence[float]) -> int:
    return sum(1 for f in fractions if f > 0)


def fingerprint(file_names: Iterable[str]) -> str:
    """A digest of the sorted file list: detects added, removed or renamed files."""
    digest = hashlib.sha256()
    for name in sorted(file_names):
        digest.update(name.encode("utf-8", "surrogateescape") + b"\n")
    return "sha256:" + digest.hexdigest()


def _unit_of(item: Item, policy: str) -> str:
    """The unit that must never straddle parts: a category (hard) or an instance (soft)."""
    if policy == "hard":
        return item.category
    if item.instance is not None:
        return item.instance
    return f"{item.domain}\0{item.path}"  # generic layout: each image is its own unit


def _seeded_order(units: Sequence[str], seed: int, key: str) -> list[str]:
    """Sorted units shuffled by a generator keyed on (seed, key), stable across machines."""
    key_int = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little")
    order = np.random.default_rng([seed, key_int]).permutation(len(units))
    ordered = sorted(units)
    return [ordered[i] for i in order]


def _deal(units: Sequence[str], sizes: Sequence[int]) -> dict[str, str]:
    assignment: dict[str, str] = {}
    start = 0
    for part, size in zip(PARTS, sizes, strict=True):
        for unit in units[start : start + size]:
            assignment[unit] = part
        start += size
    return assignment


def _soft_assignment(
    collection: Collection, config: SplitConfig
) -> tuple[dict[str, str], dict[str, str]]:
    groups: dict[tuple[str, str], set[str]] = defaultdict(set)
    for item in collection.items:
        # Paired layouts split instances; unpaired ones split each domain on its own.
        group_domain = "*" if item.instance is not None else item.domain
        groups[(item.category, group_domain)].add(_unit_of(item, "soft"))
    needed = minimum_units(config.fractions)
    small: dict[str, str] = {}
    for (category, domain), units in sorted(groups.items()):
        if len(units) < needed and category not in small:
            small[category] = _small_category(category, domain, len(units), needed, config)
    assignment: dict[str, str] = {}
    for (category, domain), units in sorted(groups.items()):
        if category in small:  # kept whole in train, or left out, in every domain alike
            if small[category] == "train":
                assignment.update(dict.fromkeys(units, "train"))
            continue
        order = _seeded_order(list(units), config.seed, f"{category}\0{domain}")
        assignment.update(_deal(order, allocate(len(order), config.fractions)))
    return assignment, small


def _small_category(category: str, domain: str, size: int, needed: int, config: SplitConfig) -> str:
    if config.small_categories == "error":
        what = "instances" if domain == "*" else f"{domain} images"
        raise SplitError(
            f"category {category!r} has {size} {what}; a soft split into "
            f"{'/'.join(p for p, f in zip(PARTS, config.fractions, strict=True) if f > 0)} needs "
            f"at least {needed}. Add images, or pass --small-categories train (keep it in "
            "train only) or --small-categories drop (leave it out)"
        )
    return config.small_categories


def _hard_assignment(collection: Collection, config: SplitConfig) -> dict[str, str]:
    categories = list(collection.categories)
    if config.test_categories is not None:
        return _hard_with_fixed_test(categories, config)
    needed = minimum_units(config.fractions)
    if len(categories) < needed:
        raise SplitError(
            f"{collection.root}: {len(categories)} categories cannot be split by category "
            f"into {needed} parts; use --policy soft or give more categories"
        )
    order = _seeded_order(categories, config.seed, "\0categories")
    return _deal(order, allocate(len(order), config.fractions))


def _hard_with_fixed_test(categories: list[str], config: SplitConfig) -> dict[str, str]:
    """The listed categories are the test part; the rest split train/val by their ratio."""
    import difflib

    wanted = list(config.test_categories or ())
    unknown = [name for name in wanted if name not in categories]
    if unknown:
        hints = [
            f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
            for name in unknown
            for close in [difflib.get_close_matches(name, categories, n=1)]
        ]
        raise SplitError(f"--classes-file names unknown categories: {', '.join(hints)}")
    rest = [name for name in categories if name not in set(wanted)]
    train_fraction, val_fraction, _ = config.fractions
    kept = train_fraction + val_fraction
    ratio = (train_fraction / kept, val_fraction / kept, 0.0)
    needed = minimum_units(ratio)
    if len(rest) < needed:
        raise SplitError(
            f"after holding out {len(wanted)} test categories, {len(rest)} remain for "
            f"{needed} parts (train/val)"
        )
    order = _seeded_order(rest, config.seed, "\0categories")
    assignment = _deal(order, allocate(len(order), ratio))
    assignment.update(dict.fromkeys(wanted, "test"))
    return assignment
