"""`sketchsearch gallery build|add`: galleries from images, added to the storage commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from sketchsearch.cli.gallery_commands import gallery
from sketchsearch.cli.options import (
    EngineOption,
    chosen_backend,
    inference_options,
)
from sketchsearch.data.errors import ExitCode

_PATH = click.Path(path_type=Path)
F = TypeVar("F", bound=Callable[..., Any])


def _engine_options(command: F) -> F:
    for option in reversed(
        [
            click.option("--engine", cls=EngineOption, type=_PATH, required=True),
            inference_options("Inference threads (default: all cores)."),
            click.option(
                "--batch-size",
                type=click.IntRange(min=1),
                help="Images per batch (default: 32 up to 224 px input, fewer above).",
            ),
            click.option(
                "--workers",
                type=click.IntRange(min=1),
                help="Decoding threads (default: one per available core, up to 4).",
            ),
            click.option("--quiet", is_flag=True, help="No progress bar."),
        ]
    ):
        command = option(command)
    return command


@gallery.command(short_help="Embed a folder (or a split's photos) into a new gallery at OUT.")
@_engine_options
@click.option("--images", type=_PATH, help="Folder of images; sub-folders name the labels.")
@click.option("--split", "split_spec", metavar="SPLIT[:PART]", help="Index a split's part.")
@click.option(
    "--data", "data_root", type=_PATH, help="Data root of --split (default: the one it records)."
)
@click.option("--domain", default="photo", show_default=True, help="Domain indexed from --split.")
@click.option("--out", type=_PATH, required=True, help="New gallery folder.")
@click.option("--no-default", is_flag=True, help="Do not record it as the model's default.")
def build(
    engine: Path,
    provider: str | None,
    backend: str | None,
    threads: int | None,
    batch_size: int | None,
    workers: int | None,
    quiet: bool,
    images: Path | None,
    split_spec: str | None,
    data_root: Path | None,
    domain: str,
    out: Path,
    no_default: bool,
) -> int:
    """Embed a folder (or a split's photos) and index them in a new gallery at OUT.

    Unreadable images are reported and skipped; the exit code is then 1. The gallery becomes
    the default that `retrieve` uses with this model family (recorded beside the model).

    \b
    Examples:
      sketchsearch gallery build --engine model.onnx --images photos/ --out gallery/
      sketchsearch gallery build --engine model.onnx --split split.json:test \\
          --domain photo --out gallery/
    """
    from sketchsearch.data.errors import UsageError
    from sketchsearch.data.split_spec import parse_split_spec
    from sketchsearch.runtime.engines.table import open_engine
    from sketchsearch.runtime.gallery_build import (
        FOLDER_SOURCE,
        build_gallery,
        describe_build,
        folder_sources,
        split_source,
        split_sources,
    )
    from sketchsearch.runtime.retriever import record_default_gallery

    if (images is None) == (split_spec is None):
        raise UsageError("pass either --images DIR or --split SPLIT[:PART] [--data ROOT]")
    if images is not None:
        root, sources, origin = images, folder_sources(images), FOLDER_SOURCE
    else:
        assert split_spec is not None
        part = parse_split_spec(split_spec, data_root)
        root, sources = part.root, split_sources(part, domain)
        origin = split_source(part, domain)
    chosen, provider = chosen_backend(engine, backend, "batch", provider, threads)
    with open_engine(
        engine,
        provider=provider,
        threads=threads,
        batch_pipeline=True,
        domain="gallery",
        backend=chosen,
    ) as model:
        report = build_gallery(
            model,
            out,
            root,
            sources,
            batch_size,
            workers,
            progress=False if quiet else None,
            source=origin,
        )
    click.echo(describe_build(report))
    if report.indexed == 0:
        click.echo(f"{out}: nothing was indexed; not recorded as the default gallery", err=True)
    elif not no_default:
        try:
            record = record_default_gallery(engine, model.card, out)
        except OSError as err:  # the gallery is built; only the convenience record failed
            click.echo(f"warning: could not record {out} as the default gallery: {err}", err=True)
        else:
            click.echo(f"default gallery of this model family: {out} (recorded in {record})")
    return int(ExitCode.FAILURE) if report.failed else int(ExitCode.OK)


@gallery.command(short_help="Add image files or folders under the gallery's root; commit.")
@_engine_options
@click.argument("directory", type=_PATH)
@click.argument("paths", type=_PATH, nargs=-1, required=True)
def add(
    engine: Path,
    provider: str | None,
    backend: str | None,
    threads: int | None,
    batch_size: int | None,
    workers: int | None,
    quiet: bool,
    directory: Path,
    paths: tuple[Path, ...],
) -> int:
    """Add image files or folders (under the gallery's root) to the gallery DIRECTORY.

    Files already indexed with the same content are skipped without being embedded; changed
    files replace their old entry.

    \b
    Example:
      sketchsearch gallery add --engine model.onnx gallery/ photos/new/*.jpg
    """
    from sketchsearch.runtime.engines.table import open_engine
    from sketchsearch.runtime.gallery_build import add_files, describe_build

    chosen, provider = chosen_backend(engine, backend, "batch", provider, threads)
    with open_engine(
        engine,
        provider=provider,
        threads=threads,
        batch_pipeline=True,
        domain="gallery",
        backend=chosen,
    ) as model:
        report = add_files(
            model, directory, list(paths), batch_size, workers, progress=False if quiet else None
        )
    click.echo(describe_build(report, verb="added"))
    return int(ExitCode.FAILURE) if report.failed else int(ExitCode.OK)
