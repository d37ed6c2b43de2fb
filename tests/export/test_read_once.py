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


def test_a_checkpoint_with_run_info_never_reads_its_run_folder(
    run: Path, reads: Counter[str]
) -> None:
    """As before: the folder only completes a card the checkpoint cannot fill itself."""
    raw = torch.load(run / "best.ckpt", weights_only=True)
    info = {"class_names": ["x", "y", "z"], "split_fingerprint": "sha256:own", "training": {}}
    raw["hyper_parameters"]["run_info"] = info
    torch.save(raw, run / "best.ckpt")
    (run / "config.yaml").write_text("data: [unclosed\n")  # would not matter even if read
    reads.clear()
    options = ExportOptions(
        checkpoint=run / "best.ckpt",
        output=run.parent / "m.onnx",
        dynamo=False,
        calib_images=run.parent / "images",
        verify_count=8,
    )
    (result,) = export_onnx(options)
    assert dict(reads) == {"best.ckpt": 1, "torch.load": 1}
    card = read_onnx_card(result.path)
    assert card.class_names == ("x", "y", "z") and card.split_fingerprint == "sha256:own"


@pytest.mark.parametrize("config", ["data: [unclosed\n", "- a list\n", "seed\n"])
def test_a_config_that_is_not_settings_is_ignored_by_export_and_verify(
    run: Path, config: str
) -> None:
    """A stray or broken config.yaml is a missing hint (exit 0), as it was before the run
    folder had one reader; it is not a usage error (exit 2)."""
    from sketchsearch.cli.main import cli
    from sketchsearch.cli.main import run as run_command

    (run / "config.yaml").write_text(config)
    images = run.parent / "images"
    onnx = run.parent / "m.onnx"
    export = ["export", "onnx", "--checkpoint", str(run / "best.ckpt"), "--output", str(onnx)]
    export += ["--legacy", "--calib-images", str(images), "--verify-count", "8"]
    assert run_command(cli, export) == 0
    card = read_onnx_card(onnx)
    assert card.training == {} and card.class_names == ("ant", "bee", "cat")
    verify = ["export", "verify", "--checkpoint", str(run / "best.ckpt"), "--onnx", str(onnx)]
    verify += ["--calib-images", str(images), "--verify-count", "8"]
    assert run_command(cli, verify) == 0


def test_retrieve_explain_reads_its_checkpoint_once(run: Path, reads: Counter[str]) -> None:
    from sketchsearch.data.hashing import file_sha256
    from sketchsearch.train.grid_explain import explain_answers

    family = file_sha256(run / "best.ckpt")
    reads.clear()
    assert explain_answers(run / "best.ckpt", [], family) == {}
    assert dict(reads) == {"best.ckpt": 1, "torch.load": 1}


def test_retrieve_explain_refuses_another_file_before_loading_it(
    run: Path, reads: Counter[str]
) -> None:
    """As before: the hash is compared first, so any other file (a checkpoint or not) is
    refused as "not the checkpoint", and never loaded."""
    from sketchsearch.data.errors import UsageError
    from sketchsearch.train.grid_explain import explain_answers

    other = run / "best.ckpt"
    other.write_bytes(b"not even a checkpoint")
    reads.clear()
    with pytest.raises(UsageError, match="not the checkpoint this model was exported from"):
        explain_answers(other, [], "0" * 64)
    assert reads["torch.load"] == 0


def test_preprocess_benchmark_reads_the_checkpoint_once(run: Path, reads: Counter[str]) -> None:
    from sketchsearch.benchmarks.preprocess_vs_timm import trained

    options = ExportOptions(
        checkpoint=run / "best.ckpt", output=run.parent / "m.onnx", dynamo=False, verify=False
    )
    (result,) = export_onnx(options)
    reads.clear()
    subject = trained(run / "best.ckpt", result.path)
    assert subject.onnx_embed is not None
    assert reads["best.ckpt"] == 1 and reads["torch.load"] == 1
    other = run.parent / "other.ckpt"
    other.write_bytes((run / "best.ckpt").read_bytes() + b"x")  # loads, but another hash
    with pytest.raises(SystemExit, match="was not exported from"):
        trained(other, result.path)
