"""`sketchsearch bench`: export a checkpoint in each precision, then latency, accuracy, report.

The chain itself is :mod:`sketchsearch.benchmarks.bench`; this is its command line.
"""

from __future__ import annotations

from pathlib import Path

import click

_PATH = click.Path(path_type=Path)


@click.command("bench")
@click.option("--checkpoint", type=_PATH, required=True, help="best.ckpt of a training run.")
@click.option("--out", type=_PATH, required=True, help="Folder for models, JSON and report.")
@click.option("--precisions", default="fp32,fp16,int8", show_default=True)
@click.option("--split", "split_spec", metavar="SPLIT[:PART]", help="Default: the run's test.")
@click.option(
    "--data", "data_root", type=_PATH, help="Data root of --split (default: the one it records)."
)
@click.option("--batch-sizes", default="1,8,32", show_default=True)
@click.option("--warmup", type=int, default=10, show_default=True)
@click.option("--iters", type=int, default=100, show_default=True)
@click.option("--threads", type=int, help="Inference threads (default: all cores).")
@click.option("--providers", default="cpu,cuda,tensorrt", show_default=True)
@click.option("--repeat", type=int, default=1, show_default=True, help="Latency runs (spread).")
@click.option("--gallery-size", type=int, default=5000, show_default=True)
@click.option(
    "--ann",
    type=_PATH,
    help="ann.py JSON for the recall-vs-QPS panel; if measured on another machine it is shown "
    "in a separate 'Not measured in this run' section. Default: no panel.",
)
@click.option(
    "--ann-size",
    type=click.IntRange(min=1000),
    help="Measure the recall-vs-QPS panel in this run at N vectors (10000: about half a "
    "minute on 2 cores). Default: no panel.",
)
def bench(
    checkpoint: Path,
    out: Path,
    precisions: str,
    split_spec: str | None,
    data_root: Path | None,
    batch_sizes: str,
    warmup: int,
    iters: int,
    threads: int | None,
    providers: str,
    repeat: int,
    gallery_size: int,
    ann: Path | None,
    ann_size: int | None,
) -> None:
    """Export CHECKPOINT (fp32/fp16/int8), measure latency and accuracy, write one table.

    Backends this machine cannot run are listed as unavailable, with the reason. The report
    shows only what this run measured: the gallery's recall-vs-QPS panel needs --ann-size (or
    --ann FILE, labelled with its machine and date when it is not this machine's).

    \b
    Example:
      sketchsearch bench --checkpoint demo-output/run/best.ckpt --out bench/ --threads 2
    """
    from sketchsearch.benchmarks.bench import BenchConfig, run_bench
    from sketchsearch.benchmarks.latency import LatencyConfig, parse_ints
    from sketchsearch.benchmarks.targets import parse_providers

    latency = LatencyConfig(
        models=(),
        batch_sizes=parse_ints(batch_sizes),
        warmup=warmup,
        iters=iters,
        threads=threads,
        providers=parse_providers(providers),
        gallery_size=gallery_size,
        repeat=repeat,
    )
    config = BenchConfig(
        checkpoint, out, parse_providers(precisions), split_spec, data_root, latency, ann, ann_size
    )
    paths = run_bench(config, progress=lambda step: click.echo(step, err=True))
    click.echo(paths["md"].read_text())
    click.echo(f"report: {paths['md']}, {paths['json']}, {paths['png']}")
