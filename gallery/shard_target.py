"""The gallery an import makes at ``out``: checked first, staged, and deleted if it fails.

Separate from the import because making a gallery appear whole or not at all (a staging folder
renamed into place, or a Qdrant collection deleted on failure) is its own job, apart from
reading the shards' rows into it.

A new folder gallery is built in a hidden folder beside ``out`` and renamed into place after
its one commit, so a killed import leaves no gallery at ``out``, only the hidden folder
(``.OUT.import-*``), which the next import to that ``out`` names for deletion. ``out`` is
checked before any work: ``.``, ``..`` and a symbolic link are refused. If the rename itself
fails, the finished gallery is kept in the hidden folder and the error says where.

A store reference (``qdrant://…``) has no staging: the collection is made at the reference,
uncommitted (no manifest point) until the one commit at the end. An import that fails with an
error deletes the collection it made; a killed one leaves a collection without a manifest,
which nothing opens as a gallery and which must be deleted before importing there again.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from sketchsearch.data.errors import UsageError
from sketchsearch.gallery.commit import MANIFEST_FILE, fsync_path
from sketchsearch.gallery.errors import GalleryError, GalleryWriteError
from sketchsearch.gallery.shard_set import ShardSet
from sketchsearch.gallery.store import GalleryStore
from sketchsearch.gallery.store_table import create_gallery, find_store_kind


def check_out(out: str | os.PathLike[str]) -> tuple[str, ...]:
    """Refuse an ``out`` folder the import could not end in, before any work; return the
    staging folders a killed import to it left behind."""
    kind, text = find_store_kind(out)
    if kind.scheme:
        return ()
    target = Path(text)
    if target.name in ("", ".", ".."):
        raise UsageError(f"--out {text!r}: name a new folder for the gallery, e.g. gallery/")
    if target.is_symlink():
        raise UsageError(
            f"--out {text}: a symbolic link; name the folder itself ({os.path.realpath(target)})"
        )
    if target.exists() and not (target.is_dir() and not any(target.iterdir())):
        hint = (
            f"; add the shards to the gallery there with `sketchsearch gallery import SHARDS "
            f"--into {target}`"
            if (target / MANIFEST_FILE).is_file()
            else ""
        )
        raise GalleryError(f"{target}: already exists; choose a new folder{hint}")
    return tuple(str(p) for p in sorted(target.parent.glob(f".{target.name}.import-*")))


@contextlib.contextmanager
def new_gallery(out: str | os.PathLike[str], shards: ShardSet) -> Iterator[GalleryStore]:
    """A new gallery, committed on a clean exit; a folder one appears at ``out`` only then."""
    kind, text = find_store_kind(out)
    if kind.scheme.startswith("qdrant"):
        with _new_collection(text, shards) as gallery:
            yield gallery
        return
    if kind.scheme:
        with create_gallery(
            text, shards.model.dim, model=shards.model, root=shards.root, source=shards.source
        ) as gallery:
            yield gallery
        return
    from sketchsearch.gallery.gallery import Gallery

    target = Path(text)
    staging = target.parent / f".{target.name}.import-{secrets.token_hex(4)}"
    try:
        with Gallery.create(
            staging,
            shards.model.dim,
            model=shards.model,
            root=shards.root,
            source=shards.source,
            capacity=shards.rows,  # known: the index never grows by copying itself
        ) as gallery:
            yield gallery
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        os.replace(staging, target)  # an empty folder at ``out`` is replaced too
    except OSError as err:
        raise GalleryWriteError(
            f"{target}: the imported gallery could not be moved there ({err.strerror}); it is "
            f"complete in {staging}: rename that folder yourself"
        ) from None
    fsync_path(target.parent)  # the rename is durable


@contextlib.contextmanager
def _new_collection(text: str, shards: ShardSet) -> Iterator[GalleryStore]:
    """A Qdrant collection made uncommitted (as ``gallery push`` makes one) and deleted if
    the import fails, so that a rerun can make it again."""
    from sketchsearch.gallery.qdrant_points import connect
    from sketchsearch.gallery.qdrant_ref import parse_ref
    from sketchsearch.gallery.qdrant_store import QdrantStore

    store = QdrantStore.create(
        text, shards.model.dim, shards.model, shards.root, shards.source, commit=False
    )
    try:
        with store:
            yield store
    except BaseException:
        where = parse_ref(text)
        with contextlib.suppress(Exception):  # the import's own error is the one to report
            client = connect(where, create=False)
            try:
                client.delete_collection(where.collection)
            finally:
                client.close()
        raise
