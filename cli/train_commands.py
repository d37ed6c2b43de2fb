"""`sketchsearch train …` and `sketchsearch train find-lr …`.

Every TrainConfig field is an option, spelled with dashes and, for the original research
scripts' sake, with underscores (``--batch_size``); ``--model_name``, ``--optimizer_name`` and
``--learning_rate`` are accepted too. Values come from the defaults, then ``--config FILE``
(YAML), then the command line.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import click

from sketchsearch.cli.options import FINITE_FLOAT
from sketchsearch.train.config import (
    AUGMENTATIONS,
    OPTIMIZERS,
    POSITIVES,
    PSEUDO_SKETCH_METHODS,
    SCHEDULERS,
    TrainConfig,
    read_yaml,
)

ALIASES = {
    "model": ["--model-name", "--model_name"],
    "optimizer": ["--optimizer-name", "--optimizer_name"],
    "lr": ["--learning-rate", "--learning_rate"],
}
CHOICES = {
    "optimizer": OPTIMIZERS,
    "scheduler": SCHEDULERS,
    "augment": AUGMENTATIONS,
    "positive": POSITIVES,
    "pseudo_sketch_method": PSEUDO_SKETCH_METHODS,
}
HELP = {
    "data": "Data root (Sketchy or generic layout).",
    "split": "Split file from `sketchsearch data split`.",
    "out": "Run folder: config, classes, checkpoints, metrics.",
    "model": "Any timm backbone: resnet10t, efficientnet_b3a, rexnet_150, swin_tiny_…",
    "img_size": "Input size in pixels (default: the backbone's).",
    "loss": "Weighted losses: contrastive, cosine, ce, triplet, infonce, e.g. contrastive=1,ce=1.",
    "margin": "Margin of contrastive, cosine and triplet (on unit vectors).",
    "temperature": "Temperature of infonce.",
    "positive": "Positive photo: any of the same category, or the sketch's own photo.",
    "weights": "Local backbone weights (safetensors or a state dict), instead of --pretrained.",
    "pretrained": "timm's pretrained weights (needs network access).",
    "milestones": "Multistep epochs, comma-separated.",
    "devices": "Devices per node (auto, or a number); with --strategy ddp for multi-GPU.",
    "precision": "Lightning precision (default: 16-mixed on a GPU, 32-true on the CPU).",
    "resume": "Continue from --out/last.ckpt.",
    "baseline": "Also test the untrained architecture, to show what training added.",
    "pseudo_sketches": "Extra queries per epoch, as a fraction of the gallery images: edge "
    "drawings of photos (OpenCV), each paired with its photo. 0: off.",
    "pseudo_sketch_method": "How pseudo-sketches are drawn: xdog or canny.",
    "stroke_augment": "Query drawings get random stroke thickness, dropped strokes, warps.",
    "distinct_categories": "Each batch holds one query per category (no false negatives).",
    "decode_cache": "Decode training images once into a memory-mapped array (faster epochs).",
    "cache_dir": "Where --decode-cache keeps its arrays (default: <out>/cache).",
}


class BatchLimit(click.ParamType):  # type: ignore[type-arg]
    """Lightning's convention: "1" means one batch, "0.25" a quarter of the epoch."""

    name = "N|FRACTION"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | float:
        if isinstance(value, int | float):
            return value
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                self.fail(f"{value!r} is neither a batch count nor a fraction", param, ctx)


def _option_type(annotation: Any) -> Any:
    hint = typing.get_type_hints(TrainConfig)[annotation]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if isinstance(hint, types.UnionType) or typing.get_origin(hint) else hint
    return {int: int, float: FINITE_FLOAT, str: str, bool: bool}.get(base, str)


def train_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """One option per TrainConfig field; unset options stay None so YAML values can show."""
    for field in reversed(fields(TrainConfig)):
        dashed = "--" + field.name.replace("_", "-")
        names = [dashed] + (["--" + field.name] if "_" in field.name else [])
        names += ALIASES.get(field.name, [])
        kind = _option_type(field.name)
        if kind is bool:
            negative = "--no-" + field.name.replace("_", "-")
            command = click.option(
                f"{dashed}/{negative}", field.name, default=None, help=HELP.get(field.name)
            )(command)
            continue
        choice = CHOICES.get(field.name)
        if choice:
            kind = click.Choice(choice, case_sensitive=False)
        elif field.name.startswith("limit_"):
            kind = BatchLimit()
        elif field.name == "milestones":
            kind = str  # comma-separated, parsed with the YAML values
        command = click.option(
            *names, field.name, default=None, type=kind, help=HELP.get(field.name)
        )(command)
    return click.option(
        "--config",
        "config_file",
        type=click.Path(exists=True, dir_okay=False),
        help="YAML file of settings; command-line options override it.",
    )(command)


def resolve_config(ctx: click.Context, options: dict[str, Any]) -> TrainConfig:
    config_file = options.pop("config_file", None)
    values = read_yaml(config_file) if config_file else {}
    values.update({k: v for k, v in options.items() if v is not None})
    for name in CHOICES:
        if isinstance(values.get(name), str):
            values[name] = values[name].lower()
    missing = [f"--{name}" for name in ("data", "split") if not values.get(name)]
    if missing:
        raise click.UsageError(
            f"missing {' and '.join(missing)} (on the command line or in --config)"
        )
    return TrainConfig.from_dict(values, config_file or "options")


@click.group(name="train", invoke_without_command=True)
@train_options
@click.pass_context
def train(ctx: click.Context, /, **options: Any) -> None:
    """Train an embedding model on a split (Lightning; CPU, GPU, multi-GPU with DDP).

    \b
    Examples:
      sketchsearch train --data demo-output/data --split demo-output/split.json \\
          --model resnet10t --img-size 64 --embed-dim 128 --epochs 15 --batch-size 64 \\
          --loss contrastive=1,ce=1 --out runs/demo
      sketchsearch train --config train.yaml --devices 4 --strategy ddp
      python train/train.py --batch_size=64 --optimizer_name="Adam" --lr=3e-4 \\
          --model_name="efficientnet_b3a" --data DATA --split split.json
    """
    if ctx.invoked_subcommand is not None:
        return
    config = resolve_config(ctx, options)  # before importing torch: errors come at once
    from lightning.pytorch.utilities import rank_zero_only

    from sketchsearch.train.run import train as run_training
    from sketchsearch.train.summary import describe_report

    report = run_training(config)
    if rank_zero_only.rank == 0:  # type: ignore[attr-defined]  # under DDP every process returns
        click.echo(describe_report(report))


@train.command(name="find-lr")
@train_options
@click.option("--min-lr", type=FINITE_FLOAT, default=1e-6, show_default=True)
@click.option("--max-lr", type=FINITE_FLOAT, default=1.0, show_default=True)
@click.option("--steps", type=int, default=100, show_default=True, help="Learning rates to try.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Loss-vs-lr PNG (default: OUT/lr_finder.png).",
)
@click.pass_context
def find_lr(
    ctx: click.Context,
    /,
    min_lr: float,
    max_lr: float,
    steps: int,
    plot: Path | None,
    **options: Any,
) -> None:
    """Suggest a learning rate with Lightning's finder; save the plot.

    Prints the suggested rate and writes the loss-vs-lr plot (--plot).

    \b
    Example:
      sketchsearch train find-lr --data demo-output/data --split demo-output/split.json \\
          --model resnet10t --img-size 64 --out runs/lr
    """
    config = resolve_config(ctx, options)
    from sketchsearch.train.lr_finder import find_learning_rate

    found = find_learning_rate(config, min_lr=min_lr, max_lr=max_lr, steps=steps, plot=plot)
    click.echo(f"suggested learning rate: {found.suggestion:.3g}")
    click.echo(f"wrote {found.plot}")
