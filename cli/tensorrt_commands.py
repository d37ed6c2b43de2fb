"""`sketchsearch export tensorrt`: parse the options, build, print the report."""

from __future__ import annotations

from pathlib import Path

import click

from sketchsearch.cli.options import FINITE_FLOAT
from sketchsearch.data.errors import UsageError

_FILE = click.Path(dir_okay=False, path_type=Path)


class NeedsTensorRT(click.Command):
    """On a machine without TensorRT, options that do not parse are not the first problem:
    say that TensorRT is missing (exit code 2) instead of asking for options it cannot use.
    Options that parse still meet the command's own checks and the lint before TensorRT."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError:
            from sketchsearch.runtime.engines.tensorrt_engine import require_tensorrt

            require_tensorrt()  # BackendUnavailableError when TensorRT cannot be imported
            raise


@click.command(
    "tensorrt", cls=NeedsTensorRT, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.option(
    "--onnx",
    "onnx_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Exported model.onnx (its card is read from it).",
)
@click.option("--output", type=_FILE, required=True, help="Engine to write: model.plan.")
@click.option("--min-batch", type=int, default=1, show_default=True)
@click.option("--opt-batch", type=int, default=8, show_default=True, help="Batch to tune for.")
@click.option("--max-batch", type=int, default=64, show_default=True)
@click.option(
    "--workspace-gb", type=FINITE_FLOAT, help="Builder workspace limit [default: GPU memory]."
)
@click.option(
    "--timing-cache", type=_FILE, help="Reuse and update tactic timings (same TensorRT and GPU)."
)
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="Compare the engine with onnxruntime on --images.",
)
@click.option(
    "--lint/--no-lint",
    default=True,
    show_default=True,
    help="Check the ONNX file against TensorRT's parser rules first (no GPU needed); "
    "--no-lint leaves the verdict to the parser itself.",
)
@click.option(
    "--images",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of real images for --verify (a few dozen are enough).",
)
def tensorrt(
    onnx_path: Path,
    output: Path,
    min_batch: int,
    opt_batch: int,
    max_batch: int,
    workspace_gb: float | None,
    timing_cache: Path | None,
    verify: bool,
    lint: bool,
    images: Path | None,
) -> None:
    """Build a TensorRT engine from an exported ONNX model, on this machine's GPU.

    The ONNX file is first checked against TensorRT's parser rules (as `sketchsearch export
    lint` does); a file that breaks one is refused with exit code 3, before TensorRT is needed.
    The engine has the ONNX model's precision (fp32, fp16 or int8) and loads only with the same
    TensorRT version on the same GPU model; its card goes to OUTPUT.json beside it. Needs the
    [tensorrt] extra and an NVIDIA GPU; elsewhere it stops with exit code 2.

    \b
    Example:
      sketchsearch export tensorrt --onnx model.onnx --output model.plan \\
          --max-batch 64 --timing-cache build/trt.cache --images val-images/
    """
    from sketchsearch.export.tensorrt_build import (
        BatchProfile,
        TensorRTExportConfig,
        export_tensorrt,
    )

    if verify and images is None:
        raise UsageError(
            "--verify compares the engine with onnxruntime on real images: pass --images DIR, "
            "or --no-verify"
        )
    config = TensorRTExportConfig(
        onnx=onnx_path,
        output=output,
        profile=BatchProfile(min_batch, opt_batch, max_batch),
        workspace_gb=workspace_gb,
        timing_cache=timing_cache,
        images=images if verify else None,
        lint=lint,
    )
    report = export_tensorrt(config)
    for line in report.lines():
        click.echo(line)
    report.check()
