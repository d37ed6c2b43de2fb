"""`sketchsearch gallery push`: move a gallery into a Qdrant collection, vectors and all."""

from __future__ import annotations

import click

from sketchsearch.cli.gallery_commands import gallery


@gallery.command(short_help="Move a gallery into Qdrant without embedding again (ids kept).")
@click.argument("source", metavar="GALLERY")
@click.option(
    "--to",
    "target",
    required=True,
    metavar="REF",
    help="qdrant://HOST:6333/COLLECTION, or qdrant+local://FOLDER?collection=NAME.",
)
@click.option("--replace", is_flag=True, help="Delete an existing target collection first.")
def push(source: str, target: str, replace: bool) -> None:
    """Copy GALLERY's vectors, ids, metadata, model binding and threshold into a Qdrant
    collection, committed once at the end: a push that fails leaves no usable collection.

    An existing collection is refused unless --replace. A server's API key comes from
    $QDRANT_API_KEY. Local mode (qdrant+local://) lets one process at a time open the folder.

    \b
    Example:
      sketchsearch gallery push demo-output/gallery --to qdrant://localhost:6333/photos
      sketchsearch gallery push demo-output/gallery \\
          --to 'qdrant+local://qdrant-data?collection=photos' --replace
    """
    from sketchsearch.gallery.push import push_gallery

    report = push_gallery(source, target, replace=replace)
    replaced = " (replaced the old collection)" if report.replaced else ""
    click.echo(
        f"pushed {report.items} items ({report.dim}-d) from {report.source} to {report.target}"
        f"{replaced} in {report.seconds:.1f} s"
    )
