"""Sources from a list file: one image path per line, as ``embed --list`` reads it.

Relative lines are relative to the root: ``--root`` when given, else the list file's folder.
Absolute lines must lie under the root too; one that does not is a failure of that line (the
run carries on), because every shard row is a path relative to the root. Blank lines and
lines starting with ``#`` are skipped; nothing else is stripped (a file name may start or end
with spaces). The label is the first sub-folder, as for ``--images``.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from sketchsearch.data.errors import UsageError
from sketchsearch.runtime.gallery_build import Source
from sketchsearch.runtime.pipeline import Failure, relative_to_root


def list_sources(
    list_file: Path, root: Path | None = None
) -> tuple[Path, list[Source], list[Failure]]:
    """(root, sources, refused): the listed files under the root, and a failure per other line."""
    try:
        text = list_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"--list {list_file}: cannot read the list ({err})") from None
    base = (root if root is not None else list_file.parent).absolute()
    if not base.is_dir():
        raise UsageError(f"--root {base}: not a folder")
    # Only the line break goes: a name may start or end with spaces.
    named = text.splitlines()
    files = [base / line for line in named if line.strip() and not line.startswith("#")]
    sources, refused = [], []
    for file, rel in zip(files, relative_to_root(files, base), strict=True):
        if rel is None:
            refused.append(Failure(str(file), f"not under the root {base}"))
            continue
        parts = PurePosixPath(rel).parts
        sources.append(Source(file, rel, parts[0] if len(parts) > 1 else None))
    return base, sources, refused
