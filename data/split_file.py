"""The split file: a typed header plus the relative paths of every part, as JSON.

Paths are relative to the data root, so a split made on one machine works on any other. The
header records how the split was made and a fingerprint of the file list, so reusing a split on
a data root that has changed since is detected instead of silently mixing data. Every item path
must pass ``check_relative_path`` (``safe_paths.py``) when the file is read, so an edited split
can never make a command open a file outside ``--data``.

``data_root`` (optional; files written before it was added lack it) records where the data was,
relative to the split file's own folder, so ``--split split.json:test`` finds its images without
``--data`` while the split and the data move together; ``--data`` still overrides it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from sketchsearch.data import strict_json
from sketchsearch.data.atomic_file import write_text_atomic
from sketchsearch.data.errors import SplitFileError, SplitMismatchError
from sketchsearch.data.file_format import FileFormat
from sketchsearch.data.layouts import Collection, Item, parse_item, scan
from sketchsearch.data.safe_paths import UnsafePathError, check_relative_path
from sketchsearch.data.splits import PARTS, SplitConfig, SplitResult, fingerprint

SPLIT_FORMAT = "sketchsearch-split"
# 2: the optional data_root key. Version 1 files (no data_root) are still read.
SPLIT_FORMAT_VERSION = 2
SPLIT_FILE = FileFormat(
    SPLIT_FORMAT,
    SPLIT_FORMAT_VERSION,
    "split file",
    SplitFileError,
    also_reads=(1,),
    json_message="not valid JSON ({msg}, line {lineno})",
    version_message=(
        "split format version {found!r}, this version of sketchsearch reads version "
        "{version}: re-run `data split`"
    ),
)


@dataclass(frozen=True)
class SplitFile:
    format: str
    format_version: int
    layout: str
    variant: str | None
    domains: tuple[str, str]
    policy: str
    seed: int
    fractions: dict[str, float]
    categories: tuple[str, ...]  # every category of the data set; label id = position
    category_parts: dict[str, tuple[str, ...]]
    small_categories: dict[str, str]
    test_categories_from: str | None
    fingerprint: str
    file_count: int
    counts: dict[str, dict[str, int]]
    warnings: dict[str, int]
    created_by: str
    items: dict[str, dict[str, tuple[str, ...]]]
    data_root: str | None = None  # relative to the split file's folder; None: not recorded

    def to_json(self) -> str:
        return strict_json.dumps(asdict(self), indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "<split>") -> SplitFile:
        converted = _with_tuples(SPLIT_FILE.load(text, cls, source))
        _check_item_paths(converted["items"], source)
        root = converted.get("data_root")
        # Relative to the split file, as `data split` writes it: an absolute root would let a
        # shared split file point commands at any folder of the machine that reads it.
        if root is not None and (
            not isinstance(root, str) or not root or "\0" in root or os.path.isabs(root)
        ):
            raise SplitFileError(
                f"{source}: data_root must be a folder path relative to the split file, not "
                f"{root!r}; re-run `sketchsearch data split` or remove the key"
            )
        return cls(**converted)

    def recorded_root(self, source: str | os.PathLike[str]) -> Path | None:
        """The data root this split records, resolved against the folder of ``source`` (the
        split file); None when the file does not record one."""
        if self.data_root is None:
            return None
        return Path(os.path.normpath(Path(source).parent / self.data_root))

    def part_items(self, part: str) -> list[Item]:
        if part not in self.items:
            raise SplitFileError(f"unknown split part {part!r}: use one of {', '.join(PARTS)}")
        paths = [path for domain in self.domains for path in self.items[part][domain]]
        return sorted((parse_item(self.layout, path) for path in paths), key=lambda i: i.path)


def _with_tuples(raw: dict[str, Any]) -> dict[str, Any]:
    converted = dict(raw)
    converted["domains"] = tuple(raw["domains"])
    converted["categories"] = tuple(raw["categories"])
    converted["category_parts"] = {k: tuple(v) for k, v in raw["category_parts"].items()}
    converted["items"] = {
        part: {domain: tuple(paths) for domain, paths in by_domain.items()}
        for part, by_domain in raw["items"].items()
    }
    return converted


def _check_item_paths(items: dict[str, dict[str, tuple[str, ...]]], source: str) -> None:
    """Every item path relative to the data root and normalised, or the file is refused."""
    for part, by_domain in items.items():
        for domain, paths in by_domain.items():
            for path in paths:
                try:
                    check_relative_path(path, "data root")
                except UnsafePathError as err:
                    raise SplitFileError(
                        f"{source}: {part}/{domain}: {err}; re-run `sketchsearch data split`"
                    ) from None


def build_split_file(
    collection: Collection,
    config: SplitConfig,
    result: SplitResult,
    test_categories_from: str | None = None,
) -> SplitFile:
    from sketchsearch.data import __version__

    items = {
        part: {
            domain: tuple(i.path for i in result.parts[part] if i.domain == domain)
            for domain in collection.domains
        }
        for part in PARTS
    }
    counts = {part: {d: len(paths) for d, paths in by.items()} for part, by in items.items()}
    return SplitFile(
        format=SPLIT_FORMAT,
        format_version=SPLIT_FORMAT_VERSION,
        layout=collection.layout,
        variant=collection.variant,
        domains=collection.domains,
        policy=config.policy,
        seed=config.seed,
        fractions=dict(zip(PARTS, config.fractions, strict=True)),
        categories=collection.categories,
        category_parts=dict(result.category_parts),
        small_categories=dict(result.small_categories),
        test_categories_from=test_categories_from,
        fingerprint=fingerprint(collection.file_names),
        file_count=len(collection.file_names),
        counts=counts,
        warnings=collection.warning_counts(),
        created_by=f"sketchsearch {__version__}",
        items=items,
    )


def save_split(
    split: SplitFile,
    path: str | os.PathLike[str],
    data_root: str | os.PathLike[str] | None = None,
) -> Path:
    """Write atomically: a crash leaves the old file or the new one, never half of one.

    With ``data_root``, the file records it relative to its own folder (``--split`` then
    needs no ``--data`` while the two keep their relative places)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if data_root is not None:
        relative = os.path.relpath(Path(data_root).resolve(), target.resolve().parent)
        split = replace(split, data_root=Path(relative).as_posix())
    return write_text_atomic(target, split.to_json())  # the umask's mode, like any output


def read_split(path: str | os.PathLike[str]) -> SplitFile:
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SplitFileError(f"{source}: split file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SplitFileError(f"{source}: cannot read split file: {err}") from None
    return SplitFile.from_json(text, str(source))


def load_split(
    path: str | os.PathLike[str], root: str | os.PathLike[str]
) -> tuple[SplitFile, Collection]:
    """Read a split and check it still matches ``root`` (by file list, without opening images)."""
    split = read_split(path)
    collection = scan(
        root,
        split.layout,
        variant=split.variant or "",
        domains=split.domains if split.layout in ("generic", "paired") else None,
    )
    check_fingerprint(split, collection, str(path))
    return split, collection


def check_fingerprint(split: SplitFile, collection: Collection, source: str) -> None:
    now = fingerprint(collection.file_names)
    if now == split.fingerprint:
        return
    in_split = {p for by_domain in split.items.values() for ps in by_domain.values() for p in ps}
    usable_now = {item.path for item in collection.items}
    added = sorted(usable_now - in_split)
    removed = sorted(in_split - set(collection.file_names))
    detail = _describe_changes(added, removed, split.file_count, len(collection.file_names))
    raise SplitMismatchError(
        f"{source}: made from a different file list than {collection.root} holds now "
        f"({detail}); re-run `sketchsearch data split` to make a new split"
    )


def _describe_changes(added: list[str], removed: list[str], before: int, after: int) -> str:
    parts = [f"{before} files then, {after} now"]
    if added:
        parts.append(f"{len(added)} not in the split, e.g. {added[0]}")
    if removed:
        parts.append(f"{len(removed)} missing, e.g. {removed[0]}")
    return "; ".join(parts)


def counts_by_category(split: SplitFile) -> Mapping[str, dict[str, dict[str, int]]]:
    """part → category → domain → count, for reports."""
    table: dict[str, dict[str, dict[str, int]]] = {}
    for part, by_domain in split.items.items():
        per_category: dict[str, dict[str, int]] = {}
        for domain, paths in by_domain.items():
            for path in paths:
                category = parse_item(split.layout, path).category
                per_category.setdefault(category, dict.fromkeys(split.domains, 0))[domain] += 1
        table[part] = dict(sorted(per_category.items()))
    return table
