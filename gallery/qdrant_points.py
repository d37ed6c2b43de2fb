"""The Qdrant side of a gallery: connecting, the visibility filter, and items as points.

An item is one point: its id is the item id, its vector the stored unit vector, its payload
the rest of the ``ItemRow`` plus two generations: ``added_gen`` (the commit that made it) and,
once removed, ``removed_gen``. A reader at committed generation ``G`` sees exactly the points
with ``added_gen <= G`` and no ``removed_gen <= G`` (``visible``): points a writer has written
for the next generation stay invisible until the manifest point says that generation is
committed. ``qdrant_client`` is imported inside the functions (the ``[qdrant]`` extra). A server's
client is wrapped in ``Guarded``: a lost server is one ``GalleryError`` line, not a traceback.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sketchsearch.data.errors import UsageError
from sketchsearch.gallery.errors import GalleryBusyError, GalleryError, GalleryNotFoundError
from sketchsearch.gallery.items import ItemRow
from sketchsearch.gallery.qdrant_ref import API_KEY_ENV, QdrantRef

ADDED, REMOVED = "added_gen", "removed_gen"
ITEM_FIELDS = ("path", "label", "instance", "sha256", "added_at")
# Indexed payload fields (a server uses them to filter before searching; local mode ignores
# them, see ``local_mode_quiet``).
KEYWORD_FIELDS = ("path", "label")
INTEGER_FIELDS = (ADDED, REMOVED)
# Local mode is brute force and has no payload indexes; qdrant_client says so on every call.
_LOCAL_MODE_NOTES = (
    r"Payload indexes have no effect in the local Qdrant",
    r"Local mode performs exact \(brute-force\) search",
)


def connect(ref: QdrantRef, create: bool) -> Any:
    """A ``QdrantClient`` for ``ref``; a local storage folder must exist unless ``create``."""
    try:
        from qdrant_client import QdrantClient
    except ImportError:
        raise UsageError(
            f"{ref.text}: a Qdrant gallery needs the [qdrant] extra: "
            "pip install 'sketchsearch[qdrant]'"
        ) from None
    if ref.path is None:
        key = os.environ.get(API_KEY_ENV) or None
        if key and not ref.https and not ref.loopback:
            raise UsageError(
                f"{ref.text}: ${API_KEY_ENV} would go to {ref.host} unencrypted; use "
                f"qdrants://{ref.url.split('://', 1)[1]}/{ref.collection} (HTTPS), or unset it"
            )
        # ``url=``: an IPv6 host needs its brackets. Probe first without the version check,
        # which runs in a thread and would add its own warning to our one line when the server
        # is unreachable; then the checked client.
        _probe(QdrantClient(url=ref.url, api_key=key, check_compatibility=False), ref)
        return Guarded(QdrantClient(url=ref.url, api_key=key), ref)
    if not create and not Path(ref.path).is_dir():
        raise GalleryNotFoundError(f"{ref.text}: no Qdrant storage folder {ref.path}")
    try:
        return QdrantClient(path=ref.path)
    except RuntimeError as err:  # portalocker's lock on the storage folder
        if "already accessed" not in str(err):
            raise
        raise GalleryBusyError(
            f"{ref.text}: another process has this Qdrant local storage open (local mode "
            "allows one process at a time); close it, or use a Qdrant server for concurrent "
            "readers and writers"
        ) from None


class Guarded:
    """A server's client whose every call turns a lost or failing server (qdrant_client's
    ``ApiException``s, httpx's errors) into one ``GalleryError`` line: callers such as the
    service's reload watcher catch ``SketchsearchError`` and carry on."""

    def __init__(self, client: Any, ref: QdrantRef):
        self._client, self._ref = client, ref

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            import httpx
            from qdrant_client.http.exceptions import ApiException

            try:
                return method(*args, **kwargs)
            except (ApiException, httpx.HTTPError) as err:
                problem = " ".join(str(err).split())[:160] or type(err).__name__
                raise GalleryError(
                    f"{self._ref.text}: lost the Qdrant server at {self._ref.url} ({problem})"
                ) from None

        return call


def _probe(client: Any, ref: QdrantRef) -> None:
    """One request now, so that an unreachable server or a refused key is one line here,
    not a traceback from deep inside the first real call."""
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    try:
        client.collection_exists(ref.collection)
    except (ResponseHandlingException, UnexpectedResponse) as err:
        problem = " ".join(str(err).split())[:160]
        raise GalleryNotFoundError(
            f"{ref.text}: no answer from a Qdrant server at {ref.url} ({problem}); "
            f"is it running, and is ${API_KEY_ENV} right?"
        ) from None
    finally:
        client.close()


@contextlib.contextmanager
def local_mode_quiet() -> Iterator[None]:
    """Silence only qdrant_client's two notes that local mode ignores indexes and ``hnsw_ef``
    (known, documented in ADR 0008); every other warning still shows."""
    with warnings.catch_warnings():
        for note in _LOCAL_MODE_NOTES:
            warnings.filterwarnings("ignore", message=note, category=UserWarning)
        yield


def visible(generation: int, labels: Sequence[str] | None = None, **match: Any) -> Any:
    """The filter for items live at ``generation``, optionally of ``labels`` and with fields
    equal to ``match``'s values (a list: any of them)."""
    from qdrant_client import models

    must: list[Any] = [models.FieldCondition(key=ADDED, range=models.Range(lte=generation))]
    if labels is not None:
        must.append(models.FieldCondition(key="label", match=models.MatchAny(any=list(labels))))
    for key, value in match.items():
        wanted = models.MatchAny(any=list(value)) if isinstance(value, list) else None
        must.append(models.FieldCondition(key=key, match=wanted or models.MatchValue(value=value)))
    gone = models.FieldCondition(key=REMOVED, range=models.Range(lte=generation))
    return models.Filter(must=must, must_not=[gone])


def labelled(labels: Sequence[str]) -> Any:
    """Items with one of ``labels``, nothing else (the manifest point has no label)."""
    from qdrant_client import models

    return models.Filter(
        must=[models.FieldCondition(key="label", match=models.MatchAny(any=list(labels)))]
    )


def written_by(generation: int) -> Any:
    """Items added at or before ``generation``, removed or not."""
    from qdrant_client import models

    return models.Filter(
        must=[models.FieldCondition(key=ADDED, range=models.Range(lte=generation))]
    )


def pending(generation: int) -> tuple[Any, Any]:
    """Filters for what a writer left after ``generation``: added points, removal marks."""
    from qdrant_client import models

    after = models.Range(gt=generation)
    return (
        models.Filter(must=[models.FieldCondition(key=ADDED, range=after)]),
        models.Filter(must=[models.FieldCondition(key=REMOVED, range=after)]),
    )


def removed_by(generation: int) -> Any:
    """Points removed at or before ``generation``: invisible to every reader of it."""
    from qdrant_client import models

    done = models.Range(lte=generation)
    return models.Filter(must=[models.FieldCondition(key=REMOVED, range=done)])


def item_payload(row: ItemRow, generation: int) -> dict[str, Any]:
    payload: dict[str, Any] = {name: getattr(row, name) for name in ITEM_FIELDS}
    payload[ADDED] = generation
    return payload


def item_row(point_id: Any, payload: dict[str, Any] | None) -> ItemRow:
    raw = payload or {}
    return ItemRow(
        id=int(point_id),
        path=str(raw.get("path")),
        label=raw.get("label"),
        instance=raw.get("instance"),
        sha256=str(raw.get("sha256")),
        added_at=str(raw.get("added_at")),
        deleted=False,
    )


def scroll_all(
    client: Any, collection: str, where: Any, vectors: bool = False, page: int | None = 1000
) -> list[Any]:
    """Every point matching ``where``, in pages of ``page`` (None: one page; local mode sorts
    every id and evaluates the filter on every point again for each page it is asked for)."""
    records: list[Any] = []
    offset = None
    limit = page or client.count(collection, exact=True).count + 1
    while True:
        batch, offset = client.scroll(
            collection, scroll_filter=where, limit=limit, offset=offset, with_vectors=vectors
        )
        records.extend(batch)
        if offset is None:
            return records
