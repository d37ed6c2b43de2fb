"""``split.json:part`` arguments: the images of one part of a split, as absolute paths.

Split files hold paths relative to the data root (so a data set can move), so every command
that reads images through a split also takes ``--data ROOT``.
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
    """``split.json`` or ``split.json:val``; the data root must be given (``--data``)."""
    path, _, part = spec.rpartition(":") if _has_part(spec) else (spec, "", default_part)
    if part not in PARTS:
        raise UsageError(f"--split {spec!r}: unknown part {part!r}; use one of {', '.join(PARTS)}")
    if root is None:
        raise UsageError(f"--split {spec}: also pass --data ROOT, the folder the split indexes")
    data_root = Path(root)
    if not data_root.is_dir():
        raise UsageError(f"--data {data_root}: not a folder")
    return SplitPart(read_split(path), Path(path), part, data_root)


def _has_part(spec: str) -> bool:
    head, sep, tail = spec.rpartition(":")
    return bool(sep) and bool(head) and "/" not in tail and "\\" not in tail
