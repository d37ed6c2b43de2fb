"""`export onnx` and `export verify` read the checkpoint file, and each run file, once."""

from __future__ import annotations

import builtins
import io
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from imagetree import write_image

from sketchsearch.export.pipeline import ExportOptions, export_onnx, verify_existing
from sketchsearch.runtime.model_card import read_onnx_card
from sketchsearch.train.embedding_model import EmbeddingModel, resolve_model_config

RUN_FILES = ("best.ckpt", "config.yaml", "classes.txt", "split.txt")


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """An older-style run: the checkpoint has no run_info, its folder says the rest."""
    torch.manual_seed(0)
    config = resolve_model_config("test_efficientnet", 16, 3, 32)
    model = EmbeddingModel(config, pretrained=False)
    folder = tmp_path / "run"
    folder.mkdir()
    torch.save(
        {
            "hyper_parameters": {"model_config": config.to_dict()},
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        },
        folder / "best.ckpt",
    )
    (folder / "config.yaml").write_text("model: test_efficientnet\nepochs: 2\n")
    (folder / "classes.txt").write_text("ant\nbee\ncat\n")
    (folder / "split.txt").write_text("fingerprint: sha256:feed\n")
    for index in range(10):
        write_image(tmp_path / "images" / f"{index}.png", seed=index, size=40)
    return folder


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Opens of the run's files (by name) and calls of torch.load ("torch.load")."""
    counts: Counter[str] = Counter()
    real_open, real_load = io.open, torch.load

    def counting_open(file, *args, **kwargs):
        if isinstance(file, str | Path) and Path(file).name in RUN_FILES:
            counts[Path(file).name] += 1
        return real_open(file, *args, **kwargs)

    def counting_load(*args, **kwargs):
        counts["torch.load"] += 1
        return real_load(*args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(io, "open", counting_open)  # pathlib's read_text and open
    monkeypatch.setattr(torch, "load", counting_load)
    return counts


def test_export_and_verify_read_each_file_once(run: Path, reads: Counter[str]) -> None:
    images = run.parent / "images"
    options = ExportOptions(
        checkpoint=run / "best.ckpt",
        output=run.parent / "m.onnx",
        dynamo=False,
        calib_images=images,
        verify_count=8,
    )
    (result,) = export_onnx(options)
    assert result.verification is not None and result.verification.passed
    once = {name: 1 for name in (*RUN_FILES, "torch.load")}
    assert dict(reads) == once
    card = read_onnx_card(result.path)  # both facts came from that one read
    assert card.class_names == ("ant", "bee", "cat") and card.split_fingerprint == "sha256:feed"
    assert card.training == {"model": "test_efficientnet", "epochs": 2}

    reads.clear()
    report = verify_existing(run / "best.ckpt", result.path, calib_images=images, verify_count=8)
    assert report.passed and np.isfinite(report.min_cosine)
    assert dict(reads) == once
