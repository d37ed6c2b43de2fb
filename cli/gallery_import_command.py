"""`sketchsearch gallery import`: a gallery from embedding shards, without embedding again."""

from __future__ import annotations

from pathlib import Path

import click

from sketchsearch.cli.gallery_commands import gallery
from sketchsearch.cli.options import GALLERY_REF


@gallery.command(
    name="import", short_help="Build a gallery from embedding shards (`sketchsearch embed`)."
)
@click.argument("shards_dir", type=click.Path(path_type=Path))
@click.option("--out", type=GALLERY_REF, metavar="GALLERY", help="New gallery: folder or store.")
@click.option("--into", type=GALLERY_REF, metavar="GALLERY", help="Existing gallery to add to.")
@click.option(
    "--partial",
    is_flag=True,
    help="Import the shards there even if the embed run that wrote them did not finish.",
)
def import_shards(
    shards_dir: Path, out: Path | str | None, into: Path | str | None, partial: bool
) -> None:
    """Index the vectors of the shards in SHARDS_DIR in a gallery, committed once at the end.

    Every shard must come from one model family, collection root and preprocessing (exit 4
    otherwise); a damaged shard is named and nothing is created. A shard the embed run planned
    but did not write is refused by name unless --partial; images that failed to embed are
    counted. Rows already in the gallery with the same path and content are skipped as
    duplicates. --into adds to an existing gallery of the same model family and root,
    replacing items whose content changed.

    --out must be a new (or empty) folder: an interrupted import leaves no gallery there, only
    a hidden .NAME.import-* folder that the next import names. For a store reference
    (qdrant://…) the collection is made at once: an import that fails deletes it, a killed one
    leaves a collection without a manifest, which must be deleted before importing again.

    \b
    Examples:
      sketchsearch embed --engine model.onnx --images photos/ --out shards/
      sketchsearch gallery import shards/ --out gallery/
      sketchsearch gallery import more-shards/ --into gallery/
      sketchsearch gallery import shards/ --out qdrant+local://qdrant-data?collection=photos
    """
    from sketchsearch.gallery.shard_import import import_shards as run_import

    report = run_import(shards_dir, out=out, into=into, partial=partial)
    click.echo(report.describe())
