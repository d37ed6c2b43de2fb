"""Reading the matches of a ``retrieve --json`` run, for Grad-CAM to explain.

The format is one JSON object per line, ``{"query": path, "results": [{"rank": 1, "id": …,
"path": …, "file": …, "label": …, "score": …}, …], …}``. The reader needs only ``query`` and
each result's ``file`` (the absolute image, when the gallery knows its root) or ``path``
(relative to the gallery root); other keys may come and go, and queries that failed
(``"error"`` set, no results) are skipped. A whole-file JSON list of such objects, or a single
object, is read too. A relative ``path`` is resolved against ``gallery_root`` when given.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sketchsearch.data.errors import ExitCode, SketchsearchError


class RetrieveFileError(SketchsearchError):
    exit_code = ExitCode.BAD_INPUT


@dataclass(frozen=True)
class RetrievedMatch:
    rank: int
    path: Path
    label: str | None
    score: float | None


@dataclass(frozen=True)
class RetrieveRecord:
    query: Path
    matches: tuple[RetrievedMatch, ...]


def read_retrieve_results(
    path: str | os.PathLike[str], gallery_root: str | os.PathLike[str] | None = None
) -> list[RetrieveRecord]:
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RetrieveFileError(f"{source}: not a text file of retrieve results") from None
    objects = _objects(text, source)
    if not objects:
        raise RetrieveFileError(f"{source}: holds no retrieve results")
    root = Path(gallery_root) if gallery_root is not None else None
    records = [_record(raw, f"{source}, {where}", root) for where, raw in objects]
    return [record for record in records if record.matches]


def _objects(text: str, source: Path) -> list[tuple[str, Any]]:
    try:  # a whole-file JSON document: a list of results, or one object
        whole = json.loads(text)
    except json.JSONDecodeError:
        pass
    else:
        items = whole if isinstance(whole, list) else [whole]
        return [(f"item {n}", item) for n, item in enumerate(items, 1)]
    objects = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                objects.append((f"line {number}", json.loads(line)))
            except json.JSONDecodeError as err:
                raise RetrieveFileError(
                    f"{source}, line {number}: not JSON ({err.msg}); expected one "
                    "`retrieve --json` object per line"
                ) from None
    return objects


def _record(raw: Any, where: str, gallery_root: Path | None) -> RetrieveRecord:
    if not isinstance(raw, dict) or not isinstance(raw.get("query"), str):
        raise RetrieveFileError(f'{where}: expected an object with a "query" path')
    results = raw.get("results")
    if results is None and raw.get("error"):
        results = []
    if not isinstance(results, list):
        raise RetrieveFileError(f'{where}: expected a "results" list')
    return RetrieveRecord(
        Path(raw["query"]),
        tuple(_match(result, rank, where, gallery_root) for rank, result in enumerate(results, 1)),
    )


def _match(result: Any, rank: int, where: str, gallery_root: Path | None) -> RetrievedMatch:
    if not isinstance(result, dict):
        raise RetrieveFileError(f"{where}: result {rank} is not an object")
    file, relative = result.get("file"), result.get("path")
    if gallery_root is not None and isinstance(relative, str):
        path = gallery_root / relative
    elif isinstance(file, str):
        path = Path(file)
    elif isinstance(relative, str):
        path = Path(relative)
    else:
        raise RetrieveFileError(f'{where}: result {rank} has no "file" or "path"')
    label, score = result.get("label"), result.get("score")
    return RetrievedMatch(
        rank=int(result.get("rank", rank)),
        path=path,
        label=str(label) if label is not None else None,
        score=float(score) if isinstance(score, int | float) else None,
    )
