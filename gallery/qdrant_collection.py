"""A Qdrant gallery's collection: how it is made, and its reserved manifest point.

The manifest point (a fixed UUID; item ids are integers) holds the committed
``GalleryManifest`` JSON, the next free item id and the collection's instance id (new at every
create, so a collection pushed again under its old name is told apart). Its vector is a fixed
unit vector that no search returns: searches only see points that carry ``added_gen``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sketchsearch.gallery.errors import GalleryCorruptError, GalleryError, GalleryNotFoundError
from sketchsearch.gallery.manifest import GalleryManifest
from sketchsearch.gallery.qdrant_points import INTEGER_FIELDS, KEYWORD_FIELDS, local_mode_quiet
from sketchsearch.gallery.qdrant_ref import QdrantRef
from sketchsearch.gallery.store import warm_vectors

MANIFEST_ID = "5ce7c4e5-0000-4000-8000-00000000ca7a"


@dataclass(frozen=True)
class ManifestPoint:
    manifest: GalleryManifest
    next_id: int
    instance: str


def make_collection(client: Any, ref: QdrantRef, dim: int, m: int, ef_construction: int) -> None:
    """A new, empty collection for cosine vectors of ``dim``, with the payload indexes."""
    from qdrant_client import models

    if client.collection_exists(ref.collection):
        raise GalleryError(
            f"{ref.text}: collection {ref.collection!r} already exists; open it, or replace "
            "it with `sketchsearch gallery push GALLERY --to REF --replace`"
        )
    client.create_collection(
        ref.collection,
        vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE),
        hnsw_config=models.HnswConfigDiff(m=m, ef_construct=ef_construction),
    )
    with local_mode_quiet():
        for name in KEYWORD_FIELDS:
            client.create_payload_index(ref.collection, name, models.PayloadSchemaType.KEYWORD)
        for name in INTEGER_FIELDS:
            client.create_payload_index(ref.collection, name, models.PayloadSchemaType.INTEGER)


def write_manifest_point(client: Any, ref: QdrantRef, point: ManifestPoint, **extra: Any) -> None:
    """The commit: one point's payload replaced in one write (``extra``: the lease)."""
    from qdrant_client import models

    payload = {
        "manifest": point.manifest.to_json(),
        "next_id": point.next_id,
        "instance": point.instance,
        **extra,
    }
    vector = warm_vectors(1, point.manifest.dim)[0].tolist()
    record = models.PointStruct(id=MANIFEST_ID, vector=vector, payload=payload)
    client.upsert(ref.collection, [record], wait=True)


def read_manifest_point(client: Any, ref: QdrantRef) -> ManifestPoint:
    """The committed manifest point, checked as strictly as a folder gallery's manifest."""
    if not client.collection_exists(ref.collection):
        raise GalleryNotFoundError(
            f"{ref.text}: no collection {ref.collection!r}; make one with `sketchsearch "
            "gallery push GALLERY --to REF`"
        )
    found = client.retrieve(ref.collection, [MANIFEST_ID], with_payload=True)
    payload = (found[0].payload if found else None) or {}
    if "manifest" not in payload:
        raise GalleryCorruptError(
            f"{ref.text}: collection {ref.collection!r} holds no committed sketchsearch "
            "manifest (a push that did not finish, or not a gallery): push it again with "
            "`sketchsearch gallery push GALLERY --to REF --replace`"
        )
    text, next_id, instance = payload["manifest"], payload.get("next_id"), payload.get("instance")
    if not isinstance(text, str):
        raise GalleryCorruptError(f"{ref.text}: the manifest point's manifest is not text")
    manifest = GalleryManifest.from_json(text, ref.text)
    if manifest.space != "cosine":
        raise GalleryCorruptError(f"{ref.text}: space {manifest.space!r}; Qdrant holds cosine")
    if not isinstance(next_id, int) or isinstance(next_id, bool) or next_id < 0:
        raise GalleryCorruptError(f"{ref.text}: the manifest point's next_id is not an id")
    if not isinstance(instance, str) or not instance:
        raise GalleryCorruptError(f"{ref.text}: the manifest point has no instance id")
    return ManifestPoint(manifest, next_id, instance)
