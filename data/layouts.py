"""Reading image collections from disk: the Sketchy layout and generic two-domain layouts.

The ``paired`` layout is the generic one plus instance pairing by file name: a query-domain
file and a gallery-domain file with the same stem in the same category are one instance (a
line drawing and the colour image it was drawn from, as in OpenMoji's black/ and color/ sets),
so soft splits keep a pair together and ``--instance`` evaluation and training work on it.

Scanning reads directory entries only and never opens an image, so it stays fast on trees of
hundreds of thousands of files; ``verify=True`` adds a full decode of every image. Whatever
does not fit is reported as a named warning and left out of the collection, never dropped
silently; ``strict=True`` turns warnings into an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sketchsearch.data.errors import LayoutError
from sketchsearch.data.imagefile import check_image_file, has_image_extension

SKETCHY_DEFAULT_VARIANT = "tx_000000000000"
SKETCHY_DOMAINS = ("sketch", "photo")  # (query, gallery) in the default direction


@dataclass(frozen=True, slots=True)
class Item:
    """One image: its path relative to the data root (POSIX separators) and its labels."""

    path: str
    domain: str
    category: str
    instance: str | None  # the photo a sketch was drawn from; None without pairing


@dataclass(frozen=True, slots=True)
class ScanWarning:
    kind: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.path}: {self.message}"


@dataclass
class Collection:
    """The usable items of a data root, plus everything that did not fit."""

    root: Path
    layout: str  # "sketchy", "generic" or "paired"
    domains: tuple[str, str]  # (query domain, gallery domain) in the default direction
    items: list[Item]
    categories: tuple[str, ...]  # sorted: label id = position
    variant: str | None = None
    file_names: list[str] = field(default_factory=list)  # every file seen, for fingerprints
    warnings: list[ScanWarning] = field(default_factory=list)

    def label_of(self, category: str) -> int:
        return self.categories.index(category)

    def warning_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for warning in self.warnings:
            counts[warning.kind] = counts.get(warning.kind, 0) + 1
        return dict(sorted(counts.items()))


def detect_layout(root: str | os.PathLike[str]) -> str:
    base = Path(root)
    if not base.is_dir():
        raise LayoutError(f"{base}: data root not found or not a directory")
    if (base / "photo").is_dir() and (base / "sketch").is_dir():
        return "sketchy"
    return "generic"


def scan(
    root: str | os.PathLike[str],
    layout: str = "auto",
    *,
    variant: str = SKETCHY_DEFAULT_VARIANT,
    domains: Sequence[str] | None = None,
    verify: bool = False,
    strict: bool = False,
) -> Collection:
    """Scan ``root`` in the given layout ("auto" picks Sketchy when photo/ and sketch/ exist)."""
    chosen = detect_layout(root) if layout == "auto" else layout
    if chosen == "sketchy":
        collection = scan_sketchy(root, variant)
    elif chosen in ("generic", "paired"):
        collection = scan_generic(root, domains, paired=chosen == "paired")
    else:
        raise LayoutError(f"unknown layout {layout!r}: use sketchy, generic, paired or auto")
    if verify:
        _exclude_undecodable(collection)
    _finish(collection)
    if strict and collection.warnings:
        shown = "; ".join(str(w) for w in collection.warnings[:3])
        more = len(collection.warnings) - 3
        tail = f" (and {more} more)" if more > 0 else ""
        raise LayoutError(
            f"{collection.root}: {len(collection.warnings)} problem(s) in strict mode: "
            f"{shown}{tail}"
        )
    return collection


def scan_sketchy(
    root: str | os.PathLike[str], variant: str = SKETCHY_DEFAULT_VARIANT
) -> Collection:
    base = Path(root)
    photo_root, sketch_root = base / "photo" / variant, base / "sketch" / variant
    for domain_root in (photo_root, sketch_root):
        if not domain_root.is_dir():
            found = sorted(p.name for p in domain_root.parent.glob("*") if p.is_dir())
            raise LayoutError(
                f"{domain_root}: variant folder not found (found: {', '.join(found) or 'none'}); "
                "pass --variant to pick one"
            )
    collection = Collection(base, "sketchy", SKETCHY_DOMAINS, [], (), variant=variant)
    photos = _scan_domain(collection, photo_root, "photo")
    sketches = _scan_domain(collection, sketch_root, "sketch")
    photo_ids: dict[tuple[str, str], str] = {}
    for category, rel, name in photos:
        photo_id = os.path.splitext(name)[0]
        photo_ids[(category, photo_id)] = rel
        collection.items.append(Item(rel, "photo", category, f"{category}/{photo_id}"))
    for category, rel, name in sketches:
        stem = os.path.splitext(name)[0]
        photo_id, _, number = stem.rpartition("-")
        if not photo_id or not number.isdigit():
            collection.warnings.append(
                ScanWarning("bad-sketch-name", rel, "expected <photo_id>-<n>, e.g. n0123_45-1.png")
            )
        elif (category, photo_id) not in photo_ids:
            collection.warnings.append(
                ScanWarning("orphan-sketch", rel, f"its photo {category}/{photo_id}.* is missing")
            )
        else:
            collection.items.append(Item(rel, "sketch", category, f"{category}/{photo_id}"))
    _warn_categories_missing_a_domain(collection, photos, sketches)
    return collection


def scan_generic(
    root: str | os.PathLike[str], domains: Sequence[str] | None = None, paired: bool = False
) -> Collection:
    """``<root>/<domain>/<category>/<file>`` with two domains; ``paired`` pairs equal stems."""
    base = Path(root)
    if not base.is_dir():
        raise LayoutError(f"{base}: data root not found or not a directory")
    found = sorted(entry.name for entry in os.scandir(base) if entry.is_dir())
    chosen = tuple(domains) if domains else tuple(found)
    if len(chosen) != 2:
        names = ", ".join(chosen[:4]) + (", …" if len(chosen) > 4 else "")
        raise LayoutError(
            f"{base}: the generic layout needs exactly two domain folders, found "
            f"{len(chosen)} ({names or 'none'}); pass --domains QUERY,GALLERY"
        )
    missing = [d for d in chosen if d not in found]
    if missing:
        raise LayoutError(f"{base}: domain folder(s) not found: {', '.join(missing)}")
    query, gallery = chosen
    layout = "paired" if paired else "generic"
    collection = Collection(base, layout, (query, gallery), [], ())
    for domain in (query, gallery):
        for _category, rel, _name in _scan_domain(collection, base / domain, domain):
            collection.items.append(parse_item(layout, rel))
    return collection


def parse_item(layout: str, rel: str) -> Item:
    """Rebuild an Item from its relative path: the path alone determines its labels."""
    parts = rel.split("/")
    if layout == "sketchy" and len(parts) == 4:
        domain, _variant, category, name = parts
        stem = os.path.splitext(name)[0]
        photo_id = stem.rpartition("-")[0] if domain == "sketch" else stem
        return Item(rel, domain, category, f"{category}/{photo_id}")
    if layout == "generic" and len(parts) == 3:
        return Item(rel, parts[0], parts[1], None)
    if layout == "paired" and len(parts) == 3:
        domain, category, name = parts
        return Item(rel, domain, category, f"{category}/{os.path.splitext(name)[0]}")
    raise LayoutError(f"{rel}: not a {layout} layout path")


def _scan_domain(
    collection: Collection, domain_root: Path, domain: str
) -> list[tuple[str, str, str]]:
    """(category, relative path, file name) of every image file under one domain folder."""
    found: list[tuple[str, str, str]] = []
    for entry in _sorted_entries(domain_root):
        rel_category = _relative(collection.root, entry.path)
        if not entry.is_dir():
            collection.file_names.append(rel_category)
            collection.warnings.append(
                ScanWarning("stray-file", rel_category, "a file outside any category folder")
            )
            continue
        images = 0
        try:
            children = sorted(os.scandir(entry.path), key=lambda child: child.name)
        except OSError as err:
            problem = f"cannot list folder: {err.strerror or err}"
            collection.warnings.append(ScanWarning("unreadable-folder", rel_category, problem))
            continue
        for child in children:
            rel = f"{rel_category}/{child.name}"
            if child.is_dir():
                collection.warnings.append(
                    ScanWarning("unexpected-folder", rel, "category folders hold files only")
                )
            elif not has_image_extension(child.name):
                collection.file_names.append(rel)
                collection.warnings.append(
                    ScanWarning("not-an-image", rel, "not an image file extension")
                )
            else:
                collection.file_names.append(rel)
                found.append((entry.name, rel, child.name))
                images += 1
        if images == 0:
            collection.warnings.append(
                ScanWarning("empty-category", rel_category, f"no {domain} images in this category")
            )
    return found


def _warn_categories_missing_a_domain(
    collection: Collection,
    photos: list[tuple[str, str, str]],
    sketches: list[tuple[str, str, str]],
) -> None:
    photo_categories = {category for category, _, _ in photos}
    sketch_categories = {category for category, _, _ in sketches}
    for category in sorted(photo_categories - sketch_categories):
        collection.warnings.append(
            ScanWarning(
                "no-sketches",
                f"sketch/{collection.variant}/{category}",
                "category has photos but no sketches",
            )
        )


def _exclude_undecodable(collection: Collection) -> None:
    paths = [collection.root / item.path for item in collection.items]
    workers = min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        problems = list(pool.map(check_image_file, paths))
    bad_instances: set[str] = set()
    kept: list[Item] = []
    for item, problem in zip(collection.items, problems, strict=True):
        if problem is None:
            kept.append(item)
            continue
        collection.warnings.append(ScanWarning("unreadable-image", item.path, problem))
        if item.domain == collection.domains[1] and item.instance is not None:
            bad_instances.add(item.instance)
    final: list[Item] = []
    for item in kept:
        if item.domain == collection.domains[0] and item.instance in bad_instances:
            collection.warnings.append(
                ScanWarning("orphan-sketch", item.path, "its photo is unreadable")
            )
        else:
            final.append(item)
    collection.items = final


def _finish(collection: Collection) -> None:
    """Sort everything so results never depend on file-system order."""
    collection.items.sort(key=lambda item: item.path)
    collection.file_names.sort()
    collection.warnings.sort(key=lambda w: (w.kind, w.path))
    collection.categories = tuple(sorted({item.category for item in collection.items}))


def _sorted_entries(folder: Path) -> Iterator[os.DirEntry[str]]:
    try:
        entries = list(os.scandir(folder))
    except OSError as err:
        raise LayoutError(f"{folder}: cannot list folder: {err.strerror or err}") from None
    return iter(sorted(entries, key=lambda entry: entry.name))


def _relative(root: Path, path: str) -> str:
    return Path(path).relative_to(root).as_posix()
