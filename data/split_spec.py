"""``split.json:part`` arguments: the images of one part of a split, as absolute paths.

Split files hold paths relative to the data root (so a data set can move). The root is
``--data ROOT`` when given, else the one ``data split`` recorded in the file (relative to it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sketchsearch.data.errors import UsageError
from sketchsearch.data.layouts import Item
from sketchsearch.data.split_file import SplitFile, read_split
from sketchsearch.data.splits import PARTS


@dataclass(frozen=True)
class SplitPart:
    split: SplitFile
    source: Path
    part: str
    root: Path

    def items(self, domain: str | None = None) -> list[Item]:
        items = self.split.part_items(self.part)
        if domain is not None:
            if domain not in self.split.domains:
                raise UsageError(
                    f"--domain {domain!r}: {self.source} has the domains "
                    f"{', '.join(self.split.domains)}"
                )
            items = [item for item in items if item.domain == domain]
        return items

    def path(self, item: Item) -> Path:
        return self.root / item.path


def parse_split_spec(
    spec: str, root: str | os.PathLike[str] | None, default_part: str = "test"
) -> SplitPart:
    """``split.json`` or ``split.json:val``; the data root is ``root`` (``--data``), else the
    one the split file records."""
    path, _, part = spec.rpartition(":") if _has_part(spec) else (spec, "", default_part)
    if part not in PARTS:
        raise UsageError(f"--split {spec!r}: unknown part {part!r}; use one of {', '.join(PARTS)}")
    split = read_split(path)
    if root is None:
        return SplitPart(split, Path(path), part, _recorded_root(split, spec, path))
    data_root = Path(root)
    if not data_root.is_dir():
        raise UsageError(f"--data {data_root}: not a folder")
    return SplitPart(split, Path(path), part, data_root)


def _recorded_root(split: SplitFile, spec: str, path: str) -> Path:
    recorded = split.recorded_root(path)
    if recorded is None:
        raise UsageError(
            f"--split {spec}: the split file does not record its data root (made before "
            "sketchsearch recorded it): pass --data ROOT, the folder the split indexes"
        )
    if not recorded.is_dir():
        raise UsageError(
            f"--split {spec}: the data root it records, {recorded}, is not a folder (moved?): "
            "pass --data ROOT"
        )
    return recorded


def _has_part(spec: str) -> bool:
    head, sep, tail = spec.rpartition(":")
    return bool(sep) and bool(head) and "/" not in tail and "\\" not in tail
