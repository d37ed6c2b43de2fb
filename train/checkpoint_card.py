"""The model card of a checkpoint: what export embeds and the torch reference engine reports.

Checkpoints from `sketchsearch train` carry their class names, split fingerprint and recipe in
their hyper-parameters; older ones (and plain state dicts) are completed from the run folder's
``classes.txt``, ``split.txt`` and ``config.yaml`` when those sit beside the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from sketchsearch.runtime.model_card import ModelCard
from sketchsearch.train.checkpoint import CheckpointFile, load_checkpoint, read_checkpoint
from sketchsearch.train.embedding_model import EmbeddingModel
from sketchsearch.train.run_folder import RunFolder, read_run_folder


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint read once, with everything a command needs from it and its run folder."""

    model: EmbeddingModel
    card: ModelCard
    run: RunFolder  # the run files beside the checkpoint, each read when first asked for


def load_with_card(
    checkpoint: str | os.PathLike[str] | CheckpointFile, precision: str = "fp32"
) -> LoadedCheckpoint:
    """The model in eval mode and its card (fp32 graph, uint8 NHWC input, both domains).

    The file is read once; pass a :class:`CheckpointFile` to reuse one already read."""
    file = checkpoint if isinstance(checkpoint, CheckpointFile) else read_checkpoint(checkpoint)
    model = load_checkpoint(file)
    run = read_run_folder(file.path)
    info = _run_info(file, run)
    config = model.config
    names = info.get("class_names") or [f"class_{i}" for i in range(config.num_classes)]
    if len(names) != config.num_classes:  # a run folder of another run
        names = [f"class_{i}" for i in range(config.num_classes)]
    card = ModelCard(
        backbone=config.backbone,
        embed_dim=config.embed_dim,
        preprocess=config.preprocess(),
        class_names=tuple(str(name) for name in names),
        family=file.sha256,
        checkpoint_sha256=file.sha256,
        precision=precision,
        split_fingerprint=info.get("split_fingerprint"),
        training=dict(info.get("training") or {}),
        versions=library_versions(),
    )
    return LoadedCheckpoint(model, card, run)


def library_versions() -> dict[str, str]:
    versions = {}
    for name in ("sketchsearch", "torch", "timm", "onnx", "onnxruntime", "onnxslim"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _run_info(file: CheckpointFile, run: RunFolder) -> dict[str, Any]:
    """What the checkpoint says about its training, or else what its run folder says (the
    folder is only read in that case)."""
    hyper = file.contents.get("hyper_parameters")
    if isinstance(hyper, dict) and isinstance(hyper.get("run_info"), dict):
        return dict(hyper["run_info"])
    info: dict[str, Any] = {}
    if run.classes is not None:
        info["class_names"] = list(run.classes)
    if run.split_fingerprint is not None:
        info["split_fingerprint"] = run.split_fingerprint
    if run.config:
        info["training"] = run.recipe()
    return info
