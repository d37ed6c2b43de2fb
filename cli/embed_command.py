"""`sketchsearch embed`: a collection into Parquet embedding shards, here or on Ray."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from click.core import ParameterSource

from sketchsearch.cli.options import (
    EngineOption,
    chosen_backend,
    inference_options,
)
from sketchsearch.data.errors import ExitCode

if TYPE_CHECKING:
    from sketchsearch.gallery.manifest import GallerySource
    from sketchsearch.runtime.gallery_build import Source
    from sketchsearch.runtime.pipeline import Failure

_PATH = click.Path(path_type=Path)


@click.command(short_help="Embed images into Parquet shards, here or on Ray.")
@click.option("--engine", cls=EngineOption, type=_PATH, required=True)
@click.option("--images", type=_PATH, help="Folder of images; sub-folders name the labels.")
@click.option("--list", "list_file", type=_PATH, help="File of image paths, one a line.")
@click.option("--root", type=_PATH, help="Root of --list's paths (default: the list's folder).")
@click.option("--split", "split_spec", metavar="SPLIT[:PART]", help="Embed a split's part.")
@click.option("--data", "data_root", type=_PATH, help="Data root of --split.")
@click.option(
    "--domain", default="photo", show_default=True, help="Domain of --split (only with --split)."
)
@click.option("--out", type=_PATH, required=True, help="Shards folder (made if missing).")
@click.option(
    "--shard-size",
    type=click.IntRange(min=1),
    help="Images per shard: the most a killed run loses per worker. [default: 10,000]",
)
@click.option(
    "--dtype",
    type=click.Choice(["float32", "float16"]),
    default="float32",
    show_default=True,
    help="Stored vector type; float16 halves the shards.",
)
@click.option(
    "--runner",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: this process; ray: Ray Data actors (needs the [ray] extra).",
)
@click.option(
    "--ray-address",
    help="Ray cluster to join, e.g. ray://head:10001 (default: start a local Ray instance, "
    "whatever RAY_ADDRESS says).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Ray: actors, at most one per CPU (each gets CPUs // N, at most one node's; default "
    "one per 4 CPUs). Local: decoding threads.",
)
@click.option(
    "--restart",
    is_flag=True,
    help="Delete this folder's shards and failures files (only embed's own) and start over.",
)
@inference_options(
    "Local runner's inference threads (refused with --runner ray: an actor uses its CPUs)."
)
@click.option("--batch-size", type=click.IntRange(min=1), help="Images per batch.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
def embed(
    engine: Path,
    images: Path | None,
    list_file: Path | None,
    root: Path | None,
    split_spec: str | None,
    data_root: Path | None,
    domain: str,
    out: Path,
    shard_size: int | None,
    dtype: str,
    runner: str,
    ray_address: str | None,
    workers: int | None,
    restart: bool,
    provider: str | None,
    backend: str | None,
    threads: int | None,
    batch_size: int | None,
    quiet: bool,
) -> int:
    """Embed a folder, a list of files or a split's part into Parquet shards in OUT.

    The images, sorted by path, are cut into shards of --shard-size; each shard appears only
    when complete. A rerun with the same images, model and options skips finished shards, so
    a killed run loses only the shards in flight; another model family or plan in OUT is
    refused. Unreadable files are recorded in OUT/failures-NNNNN.jsonl and the run carries
    on; the exit code is then 1. `gallery import OUT` makes a gallery of the shards.

    --runner ray embeds on Ray Data actors (needs [ray]), one engine per actor: on a local Ray
    instance, or on a cluster with --ray-address, where OUT and the images must be on a file
    system every node sees (a self-contained .onnx model travels through Ray's object store).
    Without --ray-address a new local Ray instance is started, even where RAY_ADDRESS is set.

    \b
    Examples:
      sketchsearch embed --engine model.onnx --images photos/ --out shards/
      sketchsearch embed --engine model.onnx --list files.txt --root /data --out shards/ \\
          --runner ray --workers 2 --dtype float16
    """
    from sketchsearch.runtime.embed_run import EmbedConfig, describe_embed, run_embed

    domain_given = click.get_current_context().get_parameter_source("domain") not in (
        ParameterSource.DEFAULT,
        None,
    )
    root, sources, origin, refused = _sources(
        images, list_file, root, split_spec, data_root, domain if domain_given else None
    )
    chosen, provider = chosen_backend(engine, backend, "batch", provider, threads)
    sized = {} if shard_size is None else {"shard_size": shard_size}
    config = EmbedConfig(
        engine=engine,
        out=out,
        **sized,
        dtype=dtype,
        runner=runner,
        workers=workers,
        ray_address=ray_address,
        provider=provider,
        backend=chosen,
        threads=threads,
        batch_size=batch_size,
        restart=restart,
        progress=False if quiet else None,
    )
    say = (lambda line: None) if quiet else (lambda line: click.echo(line, err=True))
    report = run_embed(config, sources, root, origin, refused, say)
    click.echo(describe_embed(report))
    failed = report.failed or report.failed_before
    return int(ExitCode.FAILURE) if failed else int(ExitCode.OK)


def _sources(
    images: Path | None,
    list_file: Path | None,
    root: Path | None,
    split_spec: str | None,
    data_root: Path | None,
    domain: str | None,
) -> tuple[Path, list[Source], GallerySource, list[Failure]]:
    """(root, sources, what they are, listed files refused) from the one source option;
    ``domain`` None: not given (photo for --split)."""
    from sketchsearch.data.errors import UsageError
    from sketchsearch.data.split_spec import parse_split_spec
    from sketchsearch.runtime.embed_listing import list_sources
    from sketchsearch.runtime.gallery_build import (
        FOLDER_SOURCE,
        folder_sources,
        split_source,
        split_sources,
    )

    if sum(x is not None for x in (images, list_file, split_spec)) != 1:
        raise UsageError("pass one of --images DIR, --list FILE or --split SPLIT[:PART]")
    if root is not None and list_file is None:
        raise UsageError("--root goes with --list")
    if domain is not None and split_spec is None:
        raise UsageError("--domain goes with --split (--images and --list have no domain)")
    if images is not None:
        return images, folder_sources(images), FOLDER_SOURCE, []
    if list_file is not None:
        base, sources, refused = list_sources(list_file, root)
        return base, sources, FOLDER_SOURCE, refused
    part = parse_split_spec(str(split_spec), data_root)
    domain = domain or "photo"
    return part.root, split_sources(part, domain), split_source(part, domain), []
