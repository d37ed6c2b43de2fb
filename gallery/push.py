"""Move a gallery into a Qdrant collection without embedding again (`sketchsearch gallery push`).

The source's live items go over as they are: item id = point id, the stored vector, path,
label, instance, sha256 and added_at; the manifest's model, threshold, source, root and HNSW
parameters go with them. The target is written with the commit protocol and committed once,
at the end: a push that fails half-way leaves a collection without a manifest, which nothing
opens as a gallery, and which the next ``--replace`` push deletes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from sketchsearch.data.errors import UsageError
from sketchsearch.gallery.errors import GalleryError
from sketchsearch.gallery.store_table import find_store_kind, open_gallery

PUSH_BATCH = 2048


@dataclass(frozen=True)
class PushReport:
    source: str
    target: str
    items: int
    dim: int
    replaced: bool
    seconds: float


def push_gallery(
    source: str | os.PathLike[str], target: str, *, replace: bool = False
) -> PushReport:
    """Copy ``source``'s live items and manifest into the Qdrant collection ``target``.

    An existing target collection is refused unless ``replace``; then it is deleted first
    (its old contents are gone even if this push then fails).
    """
    from sketchsearch.gallery.qdrant_points import connect
    from sketchsearch.gallery.qdrant_ref import LOCAL_SCHEME, SERVER_SCHEME, TLS_SCHEME, parse_ref
    from sketchsearch.gallery.qdrant_store import QdrantStore

    start = time.perf_counter()
    kind, text = find_store_kind(target)
    if kind.scheme not in (SERVER_SCHEME, TLS_SCHEME, LOCAL_SCHEME):
        raise UsageError(
            f"--to {text!r}: push moves a gallery into Qdrant; use qdrant://HOST:6333/NAME or "
            "qdrant+local://FOLDER?collection=NAME"
        )
    where = parse_ref(text)
    with open_gallery(source) as opened:
        exported = opened.export_vectors()
    replaced = _clear_target(connect(where, create=True), where.text, where.collection, replace)
    manifest = exported.manifest
    hnsw = (manifest.M, manifest.ef_construction, manifest.ef)
    store = QdrantStore.create(
        text, manifest.dim, manifest.model, manifest.root, manifest.source, commit=False, hnsw=hnsw
    )
    with store:
        for first in range(0, len(exported.ids), PUSH_BATCH):
            batch = slice(first, first + PUSH_BATCH)
            store.put_rows(exported.vectors[batch], exported.items[batch])
        store.reserve_ids(exported.next_id or 0)  # ids the source deleted stay unused
        store.set_threshold(manifest.threshold)
    return PushReport(
        str(source), text, len(exported.ids), manifest.dim, replaced, time.perf_counter() - start
    )


def _clear_target(client: Any, text: str, collection: str, replace: bool) -> bool:
    """Whether a collection was deleted; refuses an existing one unless ``replace``, and
    refuses to delete one that is not a gallery (or a push of one that did not finish)."""
    try:
        exists = bool(client.collection_exists(collection))
        if exists and not replace:
            raise GalleryError(
                f"--to {text}: collection {collection!r} already exists; pass --replace to "
                "delete it and push again"
            )
        if exists and not _ours(client, collection):
            raise GalleryError(
                f"--to {text}: collection {collection!r} is not a sketchsearch gallery; "
                "choose another collection (--replace deletes galleries only)"
            )
        if exists:
            client.delete_collection(collection)
        return exists
    finally:
        client.close()


def _ours(client: Any, collection: str) -> bool:
    """A gallery's manifest point, or points tagged with our generations (an unfinished push)."""
    from qdrant_client import models

    from sketchsearch.gallery.qdrant_collection import MANIFEST_ID
    from sketchsearch.gallery.qdrant_points import ADDED

    found = client.retrieve(collection, [MANIFEST_ID], with_payload=True)
    if found and "manifest" in (found[0].payload or {}):
        return True
    tagged = models.Filter(must=[models.FieldCondition(key=ADDED, range=models.Range(gte=0))])
    return bool(client.count(collection, count_filter=tagged, exact=True).count)
