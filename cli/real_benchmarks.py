"""The real-data benchmarks' commands: OpenMoji build, quality table, ablation.

Each runs as ``python -m sketchsearch.benchmarks.real.<name>`` (an entry script at that path);
the work is in ``sketchsearch.benchmarks.real``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from sketchsearch.benchmarks.real import ablation_runner, openmoji_build, quality_runner
from sketchsearch.data.strict_json import dumps


@click.command()
@click.option("--rows", "rows_file", type=click.Path(path_type=Path), required=True)
@click.option("--data", type=click.Path(path_type=Path), required=True)
@click.option("--split", type=click.Path(path_type=Path), required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--only", multiple=True, help="Run just these rows (repeatable).")
@click.option("--report-only", is_flag=True, help="Print the table of the rows already run.")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def ablation(
    rows_file: Path,
    data: Path,
    split: Path,
    out: Path,
    only: tuple[str, ...],
    report_only: bool,
    debug: bool,
) -> None:
    """Train and score every ablation row, then print the markdown table.

    \b
    Example:
      python -m sketchsearch.benchmarks.real.ablation --rows benchmarks/real/ablation.yaml \\
          --data openmoji/data --split openmoji/split.json --out openmoji/ablation
    """
    base, rows = ablation_runner.read_rows(rows_file)
    records = ablation_runner.run_rows(rows, base, data, split, out, only, report_only)
    click.echo(ablation_runner.table(rows, records))


@click.command()
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output data root.")
@click.option(
    "--tarball",
    type=click.Path(path_type=Path),
    help=f"A local {openmoji_build.TARBALL_NAME} (default: fetched with npm pack into "
    "--cache-dir).",
)
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    default=Path.home() / ".cache" / "sketchsearch",
    show_default=True,
)
@click.option("--only", help="Comma-separated hexcodes: build just these emojis (tests).")
@click.option("--limit", type=click.IntRange(min=1), help="Build only the first N emojis.")
@click.option(
    "--size", type=click.IntRange(min=16, max=1024), default=openmoji_build.SIZE, show_default=True
)
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def openmoji(
    out: Path,
    tarball: Path | None,
    cache_dir: Path,
    only: str | None,
    limit: int | None,
    size: int,
    overwrite: bool,
    debug: bool,
) -> None:
    """Render OpenMoji's line drawings (sketch) and colour images (photo) into OUT.

    \b
    Example:
      python -m sketchsearch.benchmarks.real.openmoji --out openmoji-data
    """
    source = tarball if tarball is not None else openmoji_build.fetch_tarball(cache_dir)
    hexcodes = tuple(h.strip().upper() for h in only.split(",") if h.strip()) if only else ()
    report = openmoji_build.build(
        out, source, only=hexcodes, limit=limit, size=size, overwrite=overwrite
    )
    click.echo(
        f"{report.out}: {report.emojis} emojis in {report.subgroups} subgroups, 2 domains "
        f"(sketch, photo) at {size} px; {report.skin_tone_variants_dropped} skin-tone variants "
        "left out"
    )
    for failure in report.failures:
        click.echo(f"  failed: {failure}", err=True)


@click.command()
@click.option("--split", "split", type=click.Path(path_type=Path), required=True)
@click.option("--data", type=click.Path(path_type=Path), required=True, help="Data root.")
@click.option(
    "--model", "models", type=click.Path(path_type=Path), multiple=True, help=".ckpt or .onnx."
)
@click.option(
    "--baseline",
    "baselines",
    multiple=True,
    default=("pixels", "edges", "untrained"),
    show_default=True,
)
@click.option(
    "--rerank",
    multiple=True,
    default=("none",),
    show_default=True,
    type=click.Choice(["none", "aqe", "kreciprocal"]),
    help="Re-rankings to score each model with (repeatable).",
)
@click.option("--threads", type=click.IntRange(min=1))
@click.option("--json", "json_out", type=click.Path(path_type=Path))
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def quality(
    split: Path,
    data: Path,
    models: tuple[Path, ...],
    baselines: tuple[str, ...],
    rerank: tuple[str, ...],
    threads: int | None,
    json_out: Path | None,
    debug: bool,
) -> None:
    """Score models and no-learning baselines on a hard split's held-out test part.

    \b
    Example:
      python -m sketchsearch.benchmarks.real.quality --split openmoji/split.json \\
          --data openmoji/data --model run/best.ckpt
    """
    from sketchsearch.benchmarks.machine_info import machine_facts

    rows = quality_runner.run_quality(split, data, models, baselines, rerank, threads)
    click.echo(quality_runner.table(rows))
    if json_out is not None:
        report = {
            "format": "sketchsearch.quality/1",
            "split": str(split),
            "machine": machine_facts(),
            "rows": [asdict(row) for row in rows],
        }
        json_out.write_text(dumps(report, indent=1) + "\n")
        click.echo(f"report: {json_out}")
