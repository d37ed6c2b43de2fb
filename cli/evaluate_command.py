"""`sketchsearch evaluate`: a model and its gallery, scored on a split part."""

from __future__ import annotations

from pathlib import Path

import click

from sketchsearch.cli.options import (
    GALLERY_REF,
    EngineOption,
    chosen_backend,
    inference_options,
)
from sketchsearch.cli.retrieve_command import rerank_options
from sketchsearch.data.strict_json import dumps, undefined_as_null

_PATH = click.Path(path_type=Path)
SHOWN = ("mAP@all", "mAP@200", "P@1", "P@100", "P@200", "recall@1", "recall@5", "recall@10")


@click.command()
@click.option("--engine", cls=EngineOption, type=_PATH, required=True)
@click.option(
    "--index",
    type=GALLERY_REF,
    required=True,
    help="Gallery folder or store reference (qdrant://HOST:6333/NAME).",
)
@click.option("--split", "split_spec", required=True, metavar="SPLIT[:PART]", help="Queries.")
@click.option(
    "--data", "data_root", type=_PATH, help="Data root of --split (default: the one it records)."
)
@click.option(
    "--direction",
    type=click.Choice(["sketch2photo", "photo2sketch"]),
    help="Query and gallery domains (default: the split's order, sketch→photo for Sketchy).",
)
@click.option("--instance", is_flag=True, help="Relevant = the sketch's own photo, not category.")
@click.option("--no-exact", is_flag=True, help="Skip the exhaustive-search comparison.")
@click.option(
    "--drop-gallery-queries",
    is_flag=True,
    help="Leave out queries that are themselves gallery items (same bytes) instead of refusing.",
)
@inference_options()
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--ef", type=click.IntRange(min=1), help="HNSW search breadth.")
@rerank_options
@click.option("--json", "json_out", type=_PATH, help="Write the report as JSON.")
def evaluate(
    engine: Path,
    index: Path | str,
    split_spec: str,
    data_root: Path,
    direction: str | None,
    instance: bool,
    no_exact: bool,
    drop_gallery_queries: bool,
    provider: str | None,
    backend: str | None,
    threads: int | None,
    batch_size: int,
    ef: int | None,
    rerank: str,
    rerank_k: int | None,
    json_out: Path | None,
) -> None:
    """Embed a split part's queries, search the gallery, report mAP, P@k and recall@k.

    The gallery must hold the direction's gallery domain: one built from a split records it,
    and another domain is refused (exit 2) with the command that builds the right gallery. A
    gallery built from a folder is evaluated with a warning (domain unknown). Queries that are
    themselves gallery items are refused (exit 2) unless --drop-gallery-queries.

    \b
    Example:
      sketchsearch evaluate --engine model.onnx --index gallery/ \\
          --split split.json:test --data DATA --json eval.json
      sketchsearch evaluate --engine model.onnx --index gallery/ \\
          --split split.json:test --data DATA --rerank kreciprocal --rerank-k 50
    """
    from sketchsearch.data.split_spec import parse_split_spec
    from sketchsearch.gallery.store_table import open_gallery
    from sketchsearch.runtime.engines.table import open_engine
    from sketchsearch.runtime.evaluation.evaluate import evaluate as run_evaluation
    from sketchsearch.runtime.rerank import rerank_config
    from sketchsearch.runtime.retriever import model_ref

    reranking = rerank_config(rerank, rerank_k)
    part = parse_split_spec(split_spec, data_root)
    pair = tuple(direction.split("2")) if direction else None
    chosen, provider = chosen_backend(engine, backend, "batch", provider, threads)
    with (
        open_engine(
            engine, provider=provider, threads=threads, batch_pipeline=True, backend=chosen
        ) as model,
        open_gallery(index, expected_model=model_ref(model.card)) as gallery,
    ):
        result = run_evaluation(
            model,
            gallery,
            part,
            direction=pair,  # type: ignore[arg-type]
            instance=instance,
            exact=not no_exact,
            batch_size=batch_size,
            ef=ef,
            reranking=reranking,
            drop_gallery_queries=drop_gallery_queries,
        )
    reranked = f", re-ranked by {reranking.describe()}" if reranking.active else ""
    click.echo(
        f"{result.direction}, {result.match} relevance{reranked}: {result.queries} queries, "
        f"{result.gallery_items} gallery items ({result.seconds['total']:.1f} s)"
    )
    if result.gallery is not None:
        click.echo(f"  gallery: {result.gallery.source}")
        for warning in result.gallery.warnings:
            click.echo(f"warning: {warning}")
    searched = "hnsw" if result.store == "hnswlib" else result.store.split("+")[0]
    header = f"  {'metric':<10} {searched:>8}" + (f" {'exact':>8}" if result.exact else "")
    click.echo(header)
    for name in SHOWN:
        if name in result.hnsw:
            row = f"  {name:<10} {result.hnsw[name]:>8.4f}"
            if result.exact:
                row += f" {result.exact[name]:>8.4f}"
            click.echo(row)
    if result.hnsw_recall_at_10 is not None:
        index_name = "HNSW" if result.store == "hnswlib" else f"{result.store} index"
        click.echo(f"  {index_name} recall@10 vs exact search: {result.hnsw_recall_at_10:.4f}")
    for failure in result.failures:
        click.echo(f"  failed: {failure}", err=True)
    if json_out is not None:
        json_out.write_text(
            dumps(undefined_as_null(result.to_dict()), indent=1) + "\n", encoding="utf-8"
        )
        click.echo(f"report: {json_out}")
