"""The ``retrieve --json`` record (``sketchsearch.retrieve/1``): written here, and read back here.

One JSON object per line, ``{"schema": …, "query": path, "results": [{"rank": 1, "id": …,
"path": …, "file": …, "label": …, "score": …, "confident": …, "sha256": …}, …], …}``. Writer and
reader share the retriever's own records (``Answer``, ``Match``), so a consumer (Grad-CAM, a
service client) parses exactly what ``retrieve`` wrote. The reader needs only ``query`` and each
result's ``file`` (the absolute image, when the gallery knows its root) or ``path`` (relative to
the gallery root); other keys may come and go, and queries that failed (``"error"`` set, no
results) are skipped. The record is strict JSON: a score that is not a finite number is written
as ``null``, and a missing or ``null`` score reads back as NaN ("not known"), never as a number.
A whole-file JSON list of such objects, or a single object, is read too. A relative ``path`` is
resolved against ``gallery_root`` when given."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sketchsearch.data import strict_json
from sketchsearch.data.errors import ExitCode, SketchsearchError
from sketchsearch.runtime.retriever import Answer, Match, Threshold


class RetrieveFileError(SketchsearchError):
    exit_code = ExitCode.BAD_INPUT


JSON_SCHEMA = "sketchsearch.retrieve/1"
UNKNOWN_ID = -1  # a hand-written result without an item id
UNKNOWN_SCORE = math.nan  # a result without a score: in memory only, written as null


@dataclass(frozen=True)
class EngineFacts:
    """What the record says about the engine that answered."""

    path: str
    backend: str
    device: str
    precision: str
    family: str


def retrieve_record(
    answer: Answer,
    engine: EngineFacts,
    gallery: tuple[str, int],
    threshold: Threshold,
    k: int,
) -> dict[str, Any]:
    """One ``sketchsearch.retrieve/1`` object; ``gallery`` is (its path, its live items)."""
    matches = [{**asdict(match), "score": finite_or_none(match.score)} for match in answer.matches]
    return {
        "schema": JSON_SCHEMA,
        "query": answer.query,
        "error": answer.error,
        "k": k,
        "engine": asdict(engine),
        "gallery": {"path": gallery[0], "items": gallery[1]},
        "threshold": {"value": finite_or_none(threshold.value), "source": threshold.source},
        "confident": answer.confident if not answer.error else None,
        "timings_ms": {
            "decode": round(answer.decode_ms, 3),
            "embed": round(answer.embed_ms, 3),
            "search": round(answer.search_ms + answer.rerank_ms, 3),  # re-ranking included
        },
        "results": matches,
    }


def retrieve_line(
    answer: Answer,
    engine: EngineFacts,
    gallery: tuple[str, int],
    threshold: Threshold,
    k: int,
) -> str:
    """``retrieve_record`` as one line of strict JSON (NonFiniteJSONError, never ``NaN``)."""
    return strict_json.dumps(retrieve_record(answer, engine, gallery, threshold, k))


def finite_or_none(value: float | None) -> float | None:
    """A number JSON can hold: NaN and infinities (an unknown score) become ``null``."""
    return value if value is not None and math.isfinite(value) else None


def read_retrieve_results(
    path: str | os.PathLike[str], gallery_root: str | os.PathLike[str] | None = None
) -> list[Answer]:
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


def _record(raw: Any, where: str, gallery_root: Path | None) -> Answer:
    if not isinstance(raw, dict) or not isinstance(raw.get("query"), str):
        raise RetrieveFileError(f'{where}: expected an object with a "query" path')
    results = raw.get("results")
    if results is None and raw.get("error"):
        results = []
    if not isinstance(results, list):
        raise RetrieveFileError(f'{where}: expected a "results" list')
    return Answer(
        raw["query"],
        [_match(result, rank, where, gallery_root) for rank, result in enumerate(results, 1)],
        error=raw.get("error") if isinstance(raw.get("error"), str) else None,
    )


def _match(result: Any, rank: int, where: str, gallery_root: Path | None) -> Match:
    """A result as a ``Match``; ``file`` is the image to open (resolved against the root)."""
    if not isinstance(result, dict):
        raise RetrieveFileError(f"{where}: result {rank} is not an object")
    file, relative = result.get("file"), result.get("path")
    if gallery_root is not None and isinstance(relative, str):
        file = str(gallery_root / relative)
    elif not isinstance(file, str) and isinstance(relative, str):
        file = relative
    if not isinstance(file, str):
        raise RetrieveFileError(f'{where}: result {rank} has no "file" or "path"')
    label, score, item = result.get("label"), result.get("score"), result.get("id")
    digest = result.get("sha256")
    return Match(
        rank=int(result.get("rank", rank)),
        id=item if isinstance(item, int) else UNKNOWN_ID,
        path=relative if isinstance(relative, str) else Path(file).name,
        file=file,
        label=str(label) if label is not None else None,
        score=_score(score),
        confident=result.get("confident") is True,
        sha256=digest if isinstance(digest, str) else None,
    )


def _score(value: Any) -> float:
    """A recorded score; a missing, ``null`` or non-numeric one is NaN (not known), which
    ``retrieve_record`` writes back as ``null``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return UNKNOWN_SCORE
    return float(value)
