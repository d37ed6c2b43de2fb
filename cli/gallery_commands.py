"""`sketchsearch gallery …`: the storage-level commands (building from images is the runtime's).

Each command opens the gallery, calls one method and prints the outcome.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from sketchsearch.cli.options import GalleryRef
from sketchsearch.data.errors import ExitCode
from sketchsearch.data.strict_json import dumps

GALLERY_DIR = click.Path(exists=True, file_okay=False, path_type=Path)


@click.group(name="gallery")
def gallery() -> None:
    """Inspect and maintain galleries (HNSW index + SQLite metadata + manifest)."""


@gallery.command(short_help="Show a gallery's model, parameters and counts; check its files.")
@click.argument("directory", metavar="GALLERY", type=GalleryRef(must_exist=True))
@click.option("--json", "as_json", is_flag=True, help="Print the facts as JSON.")
def info(directory: Path | str, as_json: bool) -> None:
    """Show a gallery's model, parameters and counts, after checking its files agree.

    GALLERY is a folder, or a store reference such as qdrant://localhost:6333/photos.

    \b
    Example:
      sketchsearch gallery info demo-output/gallery
      sketchsearch gallery info 'qdrant+local://qdrant-data?collection=photos'
    """
    from sketchsearch.gallery.store_table import open_gallery

    with open_gallery(directory) as opened:
        info = opened.info()
    facts = asdict(info)
    if as_json:
        click.echo(dumps(facts, indent=1))
        return
    facts["threshold"] = (
        info.threshold.describe()
        if info.threshold
        else "none (`sketchsearch analyze roc --write-threshold` or "
        "`sketchsearch gallery threshold copy` sets one)"
    )
    facts["source"] = (
        info.source.describe() if info.source else "not recorded (an older gallery): domain unknown"
    )
    width = max(len(key) for key in facts)
    for key, value in facts.items():
        click.echo(f"{key.ljust(width)}  {value}")


@gallery.command(short_help="Remove items by path (relative to the gallery root) or id.")
@click.argument("directory", type=GALLERY_DIR)
@click.argument("paths", nargs=-1)
@click.option("--id", "ids", type=int, multiple=True, help="Remove by item id (repeatable).")
@click.pass_context
def remove(
    ctx: click.Context, directory: Path, paths: tuple[str, ...], ids: tuple[int, ...]
) -> None:
    """Remove items by path (relative to the gallery root) or id, and commit.

    Items that are not in the gallery are listed and the command exits with code 3; the others
    are removed all the same.

    \b
    Example:
      sketchsearch gallery remove demo-output/gallery photos/cat/001.jpg --id 17
    """
    from sketchsearch.data.errors import UsageError
    from sketchsearch.gallery.store_table import open_gallery

    if not paths and not ids:
        raise UsageError("name at least one PATH or --id to remove")
    with open_gallery(directory, mode="rw") as opened:
        report = opened.remove(ids=ids, paths=paths)
    click.echo(f"removed {len(report.removed)} item(s) from {directory}")
    for missing in report.not_found:
        click.echo(f"not in the gallery: {missing}", err=True)
    if report.not_found:
        ctx.exit(int(ExitCode.BAD_INPUT))


@gallery.command(short_help="Rebuild the index without deleted items, keeping item ids.")
@click.argument("directory", type=GALLERY_DIR)
def compact(directory: Path) -> None:
    """Rebuild the index without deleted items, keeping item ids, and commit.

    \b
    Example:
      sketchsearch gallery compact demo-output/gallery
    """
    from sketchsearch.gallery.gallery import Gallery

    with Gallery.open(directory, mode="rw") as opened:
        before = (directory / "index.bin").stat().st_size
        gone = opened.compact()
    after = (directory / "index.bin").stat().st_size
    click.echo(f"dropped {gone} deleted item(s); index.bin {before:,} → {after:,} bytes")


@gallery.command(
    name="export", short_help="Write the live vectors, ids and metadata to an .npz file."
)
@click.argument("directory", type=GALLERY_DIR)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="NumPy .npz file to write.",
)
def export_vectors(directory: Path, out: Path) -> None:
    """Write the live vectors, ids and metadata to an .npz for another vector store.

    \b
    Example:
      sketchsearch gallery export demo-output/gallery --out vectors.npz
    """
    from sketchsearch.gallery.export_file import write_npz
    from sketchsearch.gallery.store_table import open_gallery

    with open_gallery(directory) as opened:
        exported = opened.export_vectors()
    write_npz(exported, out)
    click.echo(f"wrote {len(exported.ids)} vectors of dimension {exported.manifest.dim} to {out}")


@gallery.group()
def threshold() -> None:
    """Move the "no match" threshold to the gallery that serves.

    `analyze roc` measures it on a validation gallery; `retrieve` reads it from the gallery it
    searches. Copy it across; the target must be bound to the same model family (exit 4).
    """


@threshold.command(name="copy")
@click.option("--from", "source", type=GALLERY_DIR, required=True, help="Gallery that has one.")
@click.argument("target", type=GALLERY_DIR)
def copy_threshold(source: Path, target: Path) -> None:
    """Copy the threshold recorded in --from into TARGET, and commit.

    \b
    Example:
      sketchsearch gallery threshold copy --from val-gallery/ serving-gallery/
    """
    from sketchsearch.runtime.evaluation.roc_gallery import copy_threshold as copy

    copied, note = copy(source, target)
    click.echo(f"threshold {copied.value:.4f} copied from {source} into {target}")
    if note:
        click.echo(f"  note: {note}")


@threshold.command(
    name="clear", short_help="Remove the gallery's threshold: every result becomes confident."
)
@click.argument("directory", type=GALLERY_DIR)
def clear_threshold(directory: Path) -> None:
    """Remove the gallery's threshold: `retrieve` then marks every result confident.

    \b
    Example:
      sketchsearch gallery threshold clear serving-gallery/
    """
    from sketchsearch.runtime.evaluation.roc_gallery import set_threshold

    set_threshold(directory, None, None)
    click.echo(f"threshold cleared in {directory}")
