"""Rebuilding the embedding model from a Lightning checkpoint or a plain state dict.

Loading uses ``weights_only=True`` (no code from the file runs) and strict key matching (a
checkpoint that does not fit is an error, never a half-loaded model). Export builds on this:
it opens the file once (:func:`read_checkpoint`: hashed in chunks, then loaded from the same
handle) and hands the result to everything that needs it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sketchsearch.data.errors import ExitCode, SketchsearchError
from sketchsearch.data.hashing import stream_sha256
from sketchsearch.train.embedding_model import EmbeddingModel, ModelConfig


class CheckpointError(SketchsearchError):
    """A checkpoint that cannot be read."""

    exit_code = ExitCode.BAD_INPUT


class CheckpointMismatchError(SketchsearchError):
    """A checkpoint of another backbone, embedding size or class count than asked for."""

    exit_code = ExitCode.MISMATCH


@dataclass(frozen=True)
class CheckpointFile:
    """A checkpoint file as read from disk: what ``torch.load`` returned, and its SHA-256."""

    path: Path
    contents: dict[str, Any]
    sha256: str


def read_checkpoint(
    path: str | os.PathLike[str], check_sha256: Callable[[str], None] | None = None
) -> CheckpointFile:
    """Open the file once: hash it, then load it from the same handle (bounded extra memory).

    ``check_sha256`` sees the hash before the file is loaded, and may refuse the file by
    raising a :class:`SketchsearchError` (a checkpoint that is not the one asked for is then
    refused as such, and never loaded)."""
    source = Path(path)
    if not source.is_file():
        raise CheckpointError(f"{source}: checkpoint not found")
    try:
        with open(source, "rb") as handle:
            sha256 = stream_sha256(handle)
            if check_sha256 is not None:
                check_sha256(sha256)
            handle.seek(0)
            raw = torch.load(handle, map_location="cpu", weights_only=True)
    except SketchsearchError:
        raise  # the refusal of ``check_sha256``
    except Exception as err:  # torch raises many types for a bad file; all mean "unreadable"
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{source}: not a readable checkpoint ({message})") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{source}: holds a {type(raw).__name__}, not a state dict")
    return CheckpointFile(source, raw, sha256)


def load_checkpoint(
    path: str | os.PathLike[str] | CheckpointFile,
    *,
    backbone: str | None = None,
    embed_dim: int | None = None,
    num_classes: int | None = None,
    model_config: ModelConfig | None = None,
) -> EmbeddingModel:
    """The model in eval mode. A Lightning checkpoint says what it holds; a plain state dict
    needs ``model_config``. ``backbone``, ``embed_dim`` and ``num_classes`` are checked when
    given. ``path`` may be a :class:`CheckpointFile` already read."""
    checkpoint = path if isinstance(path, CheckpointFile) else read_checkpoint(path)
    source, raw = checkpoint.path, checkpoint.contents
    if isinstance(raw.get("hyper_parameters"), dict) and "state_dict" in raw:
        hyper = raw["hyper_parameters"]
        if not isinstance(hyper.get("model_config"), dict):
            raise CheckpointError(
                f"{source}: a Lightning checkpoint, but not of a sketchsearch model (no "
                "model_config in its hyper-parameters)"
            )
        try:
            config = ModelConfig.from_dict(hyper["model_config"])
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{source}: malformed model_config ({err})") from None
        state = {
            k.removeprefix("model."): v
            for k, v in raw["state_dict"].items()
            if k.startswith("model.")
        }
    elif model_config is not None:
        config, state = model_config, raw
    else:
        raise CheckpointError(
            f"{source}: a plain state dict does not say which model it holds; pass its "
            "model config (backbone, embedding size, classes), or use a Lightning checkpoint"
        )
    _check_expected(source, config, backbone, embed_dim, num_classes)
    model = EmbeddingModel(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0] if str(err) else "keys differ"
        detail = "; ".join(line.strip() for line in str(err).splitlines()[1:3])
        raise CheckpointMismatchError(
            f"{source}: its weights do not fit a {config.backbone} embedding model "
            f"({first} {detail})"
        ) from None
    return model.eval()


def _check_expected(
    source: Path,
    config: ModelConfig,
    backbone: str | None,
    embed_dim: int | None,
    num_classes: int | None,
) -> None:
    expected = {"backbone": backbone, "embedding size": embed_dim, "class count": num_classes}
    found = {
        "backbone": config.backbone,
        "embedding size": config.embed_dim,
        "class count": config.num_classes,
    }
    wrong = [
        f"{name} {found[name]!r} (asked for {value!r})"
        for name, value in expected.items()
        if value is not None and value != found[name]
    ]
    if wrong:
        raise CheckpointMismatchError(f"{source}: the checkpoint has {', '.join(wrong)}")
