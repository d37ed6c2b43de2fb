"""`sketchsearch export onnx|verify|lint|openvino|parity|tensorrt|triton`: thin commands over
the export library."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from sketchsearch.cli.main import LazyGroup

COMMANDS = {
    "onnx": (
        "sketchsearch.cli.export_commands:onnx_command",
        "Checkpoint → verified ONNX with a card.",
    ),
    "verify": (
        "sketchsearch.cli.export_commands:verify_command",
        "Re-check an ONNX file's parity.",
    ),
    "lint": (
        "sketchsearch.cli.export_commands:lint_command",
        "Check an ONNX file against TensorRT's parser rules (no GPU needed).",
    ),
    "openvino": (
        "sketchsearch.cli.export_commands:openvino_command",
        "ONNX → OpenVINO IR (.xml/.bin) with its card, checked (needs [openvino]).",
    ),
    "parity": (
        "sketchsearch.cli.export_commands:parity_command",
        "Check another backend embeds an ONNX file as onnxruntime does.",
    ),
    "tensorrt": (
        "sketchsearch.cli.tensorrt_commands:tensorrt",
        "ONNX → TensorRT engine (needs [tensorrt] and a GPU).",
    ),
    "triton": (
        "sketchsearch.cli.export_commands:triton_command",
        "ONNX or TensorRT plan → a Triton model repository with config.pbtxt.",
    ),
}
_PATH = click.Path(path_type=Path)
F = TypeVar("F", bound=Callable[..., Any])


@click.group(cls=LazyGroup, lazy=COMMANDS)
def export() -> None:
    """Export a trained checkpoint for serving (needs [train,export])."""


def _image_options(command: F) -> F:
    for option in reversed(
        [
            click.option(
                "--calib-images", type=_PATH, help="Folder of calibration/verification images."
            ),
            click.option(
                "--calib-split",
                metavar="SPLIT[:PART]",
                help="Split file: calibration from PART (train), verification from val.",
            ),
            click.option("--data", "data_root", type=_PATH, help="Data root of --calib-split."),
        ]
    ):
        command = option(command)
    return command


@click.command("onnx")
@click.option("--checkpoint", type=_PATH, required=True, help="best.ckpt of a training run.")
@click.option("--output", type=_PATH, required=True, help="model.onnx to write.")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default="fp32")
@click.option("--opset", type=int, default=18, show_default=True)
@_image_options
@click.option("--calib-count", type=int, default=500, show_default=True)
@click.option(
    "--calib-method",
    type=click.Choice(["auto", "minmax", "entropy", "percentile"]),
    default="auto",
    show_default=True,
    help="int8 activation ranges; auto tries minmax and percentile and keeps the one whose "
    "file agrees best with the checkpoint.",
)
@click.option("--verify-count", type=int, default=64, show_default=True)
@click.option("--simplify/--no-simplify", default=True, show_default=True)
@click.option("--dynamo/--legacy", default=True, help="torch.export (default) or TorchScript.")
@click.option("--verify/--no-verify", default=True, show_default=True)
@click.option(
    "--input-dtype",
    type=click.Choice(["uint8", "float32"]),
    default="uint8",
    help="float32: the same 0..255 pixels, for backends without uint8 inputs.",
)
@click.option("--no-logits", is_flag=True, help="Embeddings only, no class-logits output.")
@click.option("--json", "json_out", type=_PATH, help="Also write the export summary as JSON.")
def onnx_command(no_logits: bool, json_out: Path | None, **options: Any) -> None:
    """Export CHECKPOINT to ONNX: uint8 NHWC in, unit embeddings (+ logits) out, card inside.

    \b
    Examples:
      sketchsearch export onnx --checkpoint run/best.ckpt --output model.onnx
      sketchsearch export onnx --checkpoint run/best.ckpt --output model.int8.onnx \\
          --precision int8 --calib-split split.json:train --data DATA
    """
    import warnings

    from sketchsearch.export.pipeline import ExportOptions, export_onnx
    from sketchsearch.export.summary import describe_result

    # Every other option is named as its ExportOptions field.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            results = export_onnx(ExportOptions(with_logits=not no_logits, **options))
        finally:  # our own advice, one line each rather than Python's format, even on failure
            for warning in caught:
                if "sketchsearch" in warning.filename or "/export/" in warning.filename:
                    click.echo(f"warning: {warning.message}", err=True)
    for result in results:
        click.echo(describe_result(result))
    if json_out is not None:
        from sketchsearch.data.strict_json import dumps
        from sketchsearch.export.summary import result_dict

        json_out.write_text(dumps([result_dict(r) for r in results], indent=1) + "\n")


@click.command("verify")
@click.option("--checkpoint", type=_PATH, required=True)
@click.option("--onnx", "model_path", type=_PATH, required=True)
@_image_options
@click.option("--verify-count", type=int, default=64, show_default=True)
def verify_command(
    checkpoint: Path,
    model_path: Path,
    calib_images: Path | None,
    calib_split: str | None,
    data_root: Path | None,
    verify_count: int,
) -> None:
    """Compare an exported ONNX file with its checkpoint; exit 4 when they differ."""
    from sketchsearch.export.pipeline import verify_existing
    from sketchsearch.export.verify import VerificationError

    report = verify_existing(
        checkpoint, model_path, calib_images, calib_split, data_root, verify_count
    )
    click.echo(f"{model_path}: {report.describe()}")
    if not report.passed:
        raise VerificationError(f"{model_path}: verification failed: {'; '.join(report.failures)}")
    click.echo("verification passed")


@click.command("lint")
@click.argument("model_path", metavar="MODEL.onnx", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "json_out", is_flag=True, help="Print the report as JSON.")
def lint_command(model_path: Path, json_out: bool) -> None:
    """Check MODEL.onnx against TensorRT's ONNX parser rules; exit 3 when a build would fail.

    No GPU or TensorRT is needed: the rules (README, "TensorRT") are read from the parser's
    sources and operator table. `export onnx` runs the same check on every file it writes.

    \b
    Example:
      sketchsearch export lint model.int8.onnx
    """
    from sketchsearch.data.strict_json import dumps
    from sketchsearch.export.onnx_file import load_model
    from sketchsearch.export.tensorrt_lint import TensorRTCompatibilityError, lint_model

    report = lint_model(load_model(model_path))
    if json_out:
        click.echo(dumps(report.to_dict(), indent=1))
    else:
        for line in report.lines():
            click.echo(line)
        click.echo(f"{model_path}: {report.summary()}")
    if not report.passed:
        raise TensorRTCompatibilityError(
            f"{model_path}: {len(report.errors)} TensorRT parser rule(s) broken"
        )


_PARITY_IMAGES = click.option(
    "--images",
    type=_PATH,
    help="Folder of images to compare on (default: scikit-image's sample photos).",
)


@click.command("openvino")
@click.option("--onnx", "onnx_path", type=_PATH, required=True, help="model.onnx to convert.")
@click.option("--output", type=_PATH, help="model.xml to write (default: beside the ONNX).")
@click.option(
    "--compress-fp16", is_flag=True, help="Store weights in fp16 (default: fp32, as the ONNX)."
)
@_PARITY_IMAGES
def openvino_command(
    onnx_path: Path, output: Path | None, compress_fp16: bool, images: Path | None
) -> None:
    """Convert an exported ONNX file to OpenVINO's IR, card inside; exit 4 if it embeds
    differently from the ONNX under onnxruntime (cosine < 0.9999; an int8 file: < 0.98, its
    export bar). A failed check writes nothing: an earlier IR at --output stays.

    The OpenVINO backend also runs the .onnx itself (`--backend openvino`); the IR saves the
    ONNX import at each open.

    \b
    Example:
      sketchsearch export openvino --onnx model.onnx --output model.xml
      retrieve --engine model.xml --query sketch.png
    """
    from sketchsearch.export.to_openvino_ir import export_openvino

    result = export_openvino(onnx_path, output, compress_fp16, images)
    click.echo(result.parity.describe())
    click.echo(f"wrote {result.path} and {result.path.with_suffix('.bin')}")


@click.command("parity")
@click.option("--onnx", "onnx_path", type=_PATH, required=True, help="The reference .onnx.")
@click.option("--backend", required=True, metavar="NAME", help="Backend to compare, e.g. openvino.")
@click.option("--model", "candidate", type=_PATH, help="File it runs (default: the --onnx).")
@_PARITY_IMAGES
@click.option("--threads", type=click.IntRange(min=1), help="Inference threads.")
def parity_command(
    onnx_path: Path,
    backend: str,
    candidate: Path | None,
    images: Path | None,
    threads: int | None,
) -> None:
    """Embed the same photos with onnxruntime (on --onnx) and with --backend (on --model);
    exit 4 when any image's cosine is below 0.9999 (an int8 file: below 0.98, its export bar).

    \b
    Example:
      sketchsearch export parity --onnx model.onnx --backend openvino
      sketchsearch export parity --onnx model.onnx --backend openvino --model model.xml
    """
    from sketchsearch.export.backend_parity import check_parity, require_parity

    report = check_parity(onnx_path, candidate or onnx_path, backend, images, threads)
    click.echo(report.describe())
    require_parity(report)


def _batch_sizes(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> tuple[int, ...]:
    if not value:
        return ()
    try:
        return tuple(int(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r}: give sizes separated by commas, e.g. 8,16") from None


@click.command("triton")
@click.option("--onnx", "onnx_path", type=_PATH, required=True, help="The exported model.onnx.")
@click.option("--plan", type=_PATH, help="A TensorRT .plan built from --onnx, served instead.")
@click.option("--out", "repo", type=_PATH, required=True, help="Model repository folder.")
@click.option("--name", default="sketchsearch", show_default=True, help="Model name (folder).")
@click.option(
    "--model-version",
    "version",
    type=int,
    default=1,
    show_default=True,
    help="Version folder; every version shares the model's one config.pbtxt.",
)
@click.option(
    "--max-batch", type=int, help="max_batch_size [default: 64; a plan's profile max batch]."
)
@click.option("--preferred-batch", callback=_batch_sizes, metavar="N,N", help="E.g. 8,16.")
@click.option("--max-queue-delay-us", type=int, default=0, show_default=True)
@click.option("--instances", type=int, default=1, show_default=True, help="Instances per device.")
@click.option(
    "--kind",
    type=click.Choice(["auto", "cpu", "gpu"]),
    help="Instance kind [default: auto (GPU when the server has one) for ONNX, gpu for a plan].",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace an existing version, or the config all share."
)
def triton_command(
    onnx_path: Path, repo: Path, preferred_batch: tuple[int, ...], **options: Any
) -> None:
    """Write REPO/NAME/MODEL_VERSION/model.onnx (or model.plan) and REPO/NAME/config.pbtxt.

    The config lists the graph's inputs and outputs, dynamic batching, an instance group,
    and the model card as the parameter "sketchsearch.model_card". With [triton] installed
    it is parsed with Triton's own ModelConfig schema (field names and types; the server
    runs its own checks on load) before anything is moved into REPO. A new --model-version
    whose config differs from the one all versions share is refused without --overwrite.

    \b
    Examples:
      sketchsearch export triton --onnx model.onnx --out models --preferred-batch 8,16
      sketchsearch export triton --onnx model.onnx --plan model.plan --out models
      docker run --rm -p 8000:8000 -p 8001:8001 -v $PWD/models:/models \\
          nvcr.io/nvidia/tritonserver:25.01-py3 tritonserver --model-repository /models
    """
    from sketchsearch.export.triton_repo import TritonRepoOptions, export_triton

    report = export_triton(
        TritonRepoOptions(onnx=onnx_path, repo=repo, preferred_batch=preferred_batch, **options)
    )
    for line in report.lines():
        click.echo(line)
