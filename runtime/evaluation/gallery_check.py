"""What a gallery holds, checked before its numbers are trusted (`evaluate`, `analyze roc`).

A gallery of the query domain makes every query find itself: `evaluate --direction
photo2sketch` against a gallery of photos once printed mAP 1.0000. So evaluation reads the
source the gallery recorded (``GallerySource``) and refuses a gallery of the wrong domain,
naming the command that builds the right one; a gallery whose domain is unknown (built from a
folder, mixed, or built before sources were recorded) is evaluated with a loud note. Queries
whose bytes are a gallery item's (same SHA-256) are refused by default: their perfect match
says nothing about the model. ``--drop-gallery-queries`` leaves them out instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from sketchsearch.data.errors import UsageError
from sketchsearch.data.split_spec import SplitPart
from sketchsearch.gallery.items import ItemRow
from sketchsearch.gallery.manifest import GallerySource
from sketchsearch.runtime.pipeline import EmbedResult

DROP_FLAG = "--drop-gallery-queries"


@dataclass(frozen=True)
class GalleryCheck:
    """The gallery facts an evaluation report carries next to its metrics."""

    source: str  # the recorded source, in words
    domain: str | None  # the gallery's domain; None: unknown
    warnings: tuple[str, ...] = ()  # printed loudly, and kept in the JSON report
    queries_in_gallery: int = 0  # queries whose bytes are a live gallery item's
    queries_dropped: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "domain": self.domain,
            "domain_unknown": self.domain is None,
            "warnings": list(self.warnings),
            "queries_in_gallery": self.queries_in_gallery,
            "queries_dropped": self.queries_dropped,
        }


def check_source(
    source: GallerySource | None,
    gallery_ref: str,
    part: SplitPart,
    target_domain: str,
    engine_path: Path,
) -> GalleryCheck:
    """Refuse a gallery recorded with another domain than ``target_domain`` (exit 2).

    Unknown domains and another split or part are allowed, with a warning: a serving gallery
    built from a folder is a legitimate thing to evaluate, but the reader must be told.
    """
    build = (
        f"sketchsearch gallery build --engine {engine_path} --split {part.source}:{part.part} "
        f"--data {part.root} --domain {target_domain} --out {gallery_ref}-{target_domain}"
    )
    if source is None:
        note = "not recorded (a gallery built before sources were recorded)"
        return _unknown(note, build)
    if source.kind == "folder":
        return _unknown("built from a folder of images", build, source.describe())
    if source.kind == "mixed":
        return _unknown("split gallery with files added later", build, source.describe())
    if source.domain != target_domain:
        raise UsageError(
            f"{gallery_ref} holds {source.describe()}, but the queries are to be matched "
            f"against {target_domain} images; build that gallery with: {build}"
        )
    warnings = []
    if source.partial:
        warnings.append(
            "items were removed from the gallery after it was built: its metrics are those "
            "of a subset of the part"
        )
    if source.split_fingerprint != part.split.fingerprint:
        warnings.append(
            f"the gallery was built from another split ({source.split_file}, fingerprint "
            f"{source.split_fingerprint}) than the queries' ({part.source}, fingerprint "
            f"{part.split.fingerprint})"
        )
    elif source.part != part.part:
        warnings.append(
            f"the gallery holds part {source.part!r} of the split, the queries come from "
            f"part {part.part!r}"
        )
    return GalleryCheck(source.describe(), source.domain, tuple(warnings))


def _unknown(why: str, build: str, described: str | None = None) -> GalleryCheck:
    warning = (
        f"gallery domain unknown: {why}; nothing checks that it holds the images the "
        f"queries should find. A gallery that can be checked: {build}"
    )
    return GalleryCheck(described or f"{why}: domain unknown", None, (warning,))


def in_gallery(digests: list[str], items: list[ItemRow]) -> np.ndarray:
    """Boolean per query: True where its bytes are those of a live gallery item."""
    held = {row.sha256 for row in items}
    return np.array([digest in held for digest in digests], dtype=bool)


def screen_queries(
    check: GalleryCheck,
    gallery_ref: str,
    queries: list[Any],
    embedded: EmbedResult,
    stored_items: list[ItemRow],
    drop: bool,
) -> tuple[GalleryCheck, list[Any], EmbedResult]:
    """Refuse queries that are gallery items (exit 2), or with ``drop`` leave them out."""
    inside = in_gallery(embedded.digests, stored_items)
    count = int(inside.sum())
    if count == 0:
        return check, queries, embedded
    example = queries[int(np.flatnonzero(inside)[0])].path
    found = (
        f"{count} of {len(queries)} queries are themselves items of {gallery_ref} (same "
        f"SHA-256, e.g. {example}): each finds itself at rank 1"
    )
    if not drop:
        raise UsageError(
            f"{found}; evaluate against a gallery of the other domain, or pass {DROP_FLAG} "
            "to leave those queries out"
        )
    if count == len(queries):
        raise UsageError(f"{found}; {DROP_FLAG} would leave no query")
    keep = np.flatnonzero(~inside)
    kept = replace(
        embedded,
        vectors=embedded.vectors[keep],
        done=[embedded.done[i] for i in keep],
        digests=[embedded.digests[i] for i in keep],
    )
    warning = f"{found}; {count} left out ({DROP_FLAG})"
    check = replace(
        check,
        warnings=(*check.warnings, warning),
        queries_in_gallery=count,
        queries_dropped=count,
    )
    return check, [queries[i] for i in keep], kept
