"""The model card of a checkpoint: what export embeds and the torch reference engine reports.

Checkpoints from `sketchsearch train` carry their class names, split fingerprint and recipe in
their hyper-parameters; older ones (and plain state dicts) are completed from the run folder's
``classes.txt``, ``split.txt`` and ``config.yaml`` when those sit beside the file.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from sketchsearch.runtime.model_card import ModelCard
from sketchsearch.train.checkpoint import load_checkpoint
from sketchsearch.train.embedding_model import EmbeddingModel


@dataclass(frozen=True)
class LoadedCheckpoint:
    model: EmbeddingModel
    card: ModelCard


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_with_card(path: str | os.PathLike[str], precision: str = "fp32") -> LoadedCheckpoint:
    """The model in eval mode and its card (fp32 graph, uint8 NHWC input, both domains)."""
    source = Path(path)
    model = load_checkpoint(source)
    info = _run_info(source)
    config = model.config
    names = info.get("class_names") or [f"class_{i}" for i in range(config.num_classes)]
    if len(names) != config.num_classes:  # a run folder of another run
        names = [f"class_{i}" for i in range(config.num_classes)]
    sha = file_sha256(source)
    card = ModelCard(
        backbone=config.backbone,
        embed_dim=config.embed_dim,
        preprocess=config.preprocess(),
        class_names=tuple(str(name) for name in names),
        family=sha,
        checkpoint_sha256=sha,
        precision=precision,
        split_fingerprint=info.get("split_fingerprint"),
        training=dict(info.get("training") or {}),
        versions=library_versions(),
    )
    return LoadedCheckpoint(model, card)


def library_versions() -> dict[str, str]:
    versions = {}
    for name in ("sketchsearch", "torch", "timm", "onnx", "onnxruntime", "onnxslim"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _run_info(source: Path) -> dict[str, Any]:
    raw = torch.load(source, map_location="cpu", weights_only=True)
    hyper = raw.get("hyper_parameters") if isinstance(raw, dict) else None
    if isinstance(hyper, dict) and isinstance(hyper.get("run_info"), dict):
        return dict(hyper["run_info"])
    return _run_folder_info(source.parent)


def _run_folder_info(folder: Path) -> dict[str, Any]:
    info: dict[str, Any] = {}
    classes = folder / "classes.txt"
    if classes.is_file():
        info["class_names"] = [line for line in classes.read_text().splitlines() if line]
    split = folder / "split.txt"
    if split.is_file():
        for line in split.read_text().splitlines():
            if line.startswith("fingerprint:"):
                info["split_fingerprint"] = line.split(":", 1)[1].strip()
    config = folder / "config.yaml"
    if config.is_file():
        import yaml

        raw = yaml.safe_load(config.read_text())
        if isinstance(raw, dict):
            keep = ("model", "loss", "epochs", "batch_size", "optimizer", "lr", "seed")
            info["training"] = {k: raw[k] for k in keep if k in raw}
    return info
