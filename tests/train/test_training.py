"""Short real training runs on tiny synthetic data (timm's test_efficientnet at 32 px)."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from sketchsearch.data.errors import UsageError
from sketchsearch.train.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    load_checkpoint,
)
from sketchsearch.train.config import TrainConfig
from sketchsearch.train.embedding_model import create_backbone
from sketchsearch.train.run import train


def config_for(tiny_data, out: Path, **changes) -> TrainConfig:
    root, split = tiny_data
    base = TrainConfig(
        data=str(root),
        split=str(split),
        out=str(out),
        model="test_efficientnet",
        img_size=32,
        embed_dim=16,
        epochs=3,
        batch_size=8,
        loss="infonce=1,ce=1",
        lr=3e-3,
        workers=0,
        warmup_epochs=0,
        patience=50,
        test=True,
    )
    return replace(base, **changes)


def epoch_losses(out: Path) -> list[float]:
    with (out / "metrics.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("train/loss_epoch")]
    return [float(r["train/loss_epoch"]) for r in rows]


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return train(config_for(tiny_data, out, epochs=4, lr=3e-3, augment="none")), out


def test_a_short_run_learns_and_writes_its_folder(trained) -> None:
    report, out = trained
    names = {p.name for p in out.iterdir()}
    assert {
        "best.ckpt",
        "last.ckpt",
        "metrics.csv",
        "config.yaml",
        "classes.txt",
        "split.txt",
        "test_metrics.json",
        "tensorboard",
    } <= names
    losses = epoch_losses(out)
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert (out / "classes.txt").read_text().split() == sorted(
        (out / "classes.txt").read_text().split()
    )
    assert "fingerprint: sha256:" in (out / "split.txt").read_text()
    assert report.test is not None and 0 <= report.test["mAP@all"] <= 1
    assert {"mAP@all", "P@1", "recall@1", "recall@3", "cos_pos", "cos_neg"} <= set(report.test)


def test_resume_continues_the_epoch_count(tiny_data, tmp_path: Path) -> None:
    first = train(config_for(tiny_data, tmp_path, epochs=1, test=False, scheduler="none"))
    assert first.epochs == 1
    again = train(
        config_for(tiny_data, tmp_path, epochs=3, resume=True, test=False, scheduler="none")
    )
    assert again.epochs == 3
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["epoch"] == 2
    assert len(epoch_losses(tmp_path)) == 3
    assert "resume: false" in (tmp_path / "config.yaml").read_text()  # repeatable as a new run
    with pytest.raises(UsageError, match="nothing to resume"):
        train(config_for(tiny_data, tmp_path / "empty", resume=True))


def test_resume_refuses_a_changed_plan(tiny_data, tmp_path: Path) -> None:
    train(config_for(tiny_data, tmp_path, epochs=1, test=False))  # cosine over 1 epoch
    with pytest.raises(UsageError, match="epochs was 1, now 3"):
        train(config_for(tiny_data, tmp_path, epochs=3, resume=True, test=False))
    with pytest.raises(UsageError, match="model_config was"):
        train(config_for(tiny_data, tmp_path, epochs=1, resume=True, embed_dim=8, test=False))


def test_an_unusable_validation_part_is_refused(tiny_data, tmp_path: Path) -> None:
    from sketchsearch.data.errors import SplitError
    from sketchsearch.data.layouts import scan
    from sketchsearch.data.split_file import build_split_file, save_split
    from sketchsearch.data.splits import SplitConfig, make_split

    root, _ = tiny_data
    collection = scan(root)
    no_val = SplitConfig(fractions=(0.75, 0.0, 0.25))
    path = save_split(
        build_split_file(collection, no_val, make_split(collection, no_val)), tmp_path / "s.json"
    )
    with pytest.raises(SplitError, match="the val part has 0 sketch and 0 photo images"):
        train(replace(config_for(tiny_data, tmp_path / "run"), split=str(path)))


def test_load_checkpoint_round_trip_and_mismatch(trained, tmp_path: Path) -> None:
    _, out = trained
    model = load_checkpoint(out / "best.ckpt", backbone="test_efficientnet", embed_dim=16)
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        embeddings = model.embed(images)
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(3), atol=1e-5)
    state = tmp_path / "plain.pt"
    torch.save(model.state_dict(), state)
    plain = load_checkpoint(state, model_config=model.config)
    with torch.no_grad():
        assert torch.allclose(plain.embed(images), embeddings)
    with pytest.raises(CheckpointMismatchError, match="backbone 'test_efficientnet'"):
        load_checkpoint(out / "best.ckpt", backbone="resnet10t")
    with pytest.raises(CheckpointMismatchError, match="embedding size 16"):
        load_checkpoint(out / "best.ckpt", embed_dim=32)
    with pytest.raises(CheckpointMismatchError, match="do not fit"):
        load_checkpoint(state, model_config=replace(model.config, embed_dim=8))
    with pytest.raises(CheckpointError, match="plain state dict does not say"):
        load_checkpoint(state)
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.ckpt")


def test_validation_embeds_what_the_runtime_preprocessing_makes(tiny_data, tmp_path) -> None:
    from sketchsearch.runtime.preprocess import preprocess_file
    from sketchsearch.train.run import prepare

    root, _ = tiny_data
    _, module, data = prepare(config_for(tiny_data, tmp_path))
    assert data.preprocess == module.model.config.preprocess()  # the model's own eval config
    queries, gallery = data.val_dataloader()
    for loader in (queries, gallery):
        for index in range(2):
            item = loader.dataset.items[index]
            expected = preprocess_file(root / item.path, module.model.config.preprocess())
            got = loader.dataset[index]["image"].permute(1, 2, 0).numpy()
            assert np.array_equal(got, expected)


def test_pretrained_offline_fails_clearly_and_local_weights_load(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UsageError, match="pass the file with --weights PATH"):
        create_backbone("resnet10t", pretrained=True)
    import timm
    from safetensors.torch import save_file

    source = timm.create_model("test_efficientnet", num_classes=0)
    save_file(source.state_dict(), str(tmp_path / "w.safetensors"))
    loaded = create_backbone("test_efficientnet", weights=str(tmp_path / "w.safetensors"))
    for (name, a), b in zip(source.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    wrapped = {f"model.encoders.query.{k}": v for k, v in source.state_dict().items()}
    torch.save({"state_dict": wrapped}, tmp_path / "run.ckpt")  # e.g. one of our checkpoints
    loaded = create_backbone("test_efficientnet", weights=str(tmp_path / "run.ckpt"))
    pairs = zip(source.state_dict().values(), loaded.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    with pytest.raises(UsageError, match="weights file not found"):
        create_backbone("test_efficientnet", weights=str(tmp_path / "none.pt"))
    other = timm.create_model("test_resnet", num_classes=0)
    save_file(other.state_dict(), str(tmp_path / "other.safetensors"))
    with pytest.raises(UsageError, match="not weights for test_efficientnet"):
        create_backbone("test_efficientnet", weights=str(tmp_path / "other.safetensors"))
    torch.save({}, tmp_path / "empty.pt")
    with pytest.raises(UsageError, match="not weights for test_efficientnet"):
        create_backbone("test_efficientnet", weights=str(tmp_path / "empty.pt"))
    with pytest.raises(UsageError, match=r"not a timm model.*did you mean"):
        create_backbone("resnet10")


def test_separate_encoders_and_fixed_size_transformers() -> None:
    from sketchsearch.train.embedding_model import EmbeddingModel, resolve_model_config

    config = resolve_model_config("test_efficientnet", 8, 3, 32, separate_encoders=True)
    model = EmbeddingModel(config).eval()
    assert set(model.encoders) == {"query", "gallery"}
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        assert not torch.allclose(model.embed(images, "query"), model.embed(images, "gallery"))
        shared = EmbeddingModel(replace(config, separate_encoders=False)).eval()
        assert torch.allclose(shared.embed(images, "query"), shared.embed(images, "gallery"))
    vit = EmbeddingModel(resolve_model_config("test_vit", 8, 3, 48)).eval()  # fixed input size
    with torch.no_grad():
        assert vit.embed(torch.zeros(1, 3, 48, 48, dtype=torch.uint8)).shape == (1, 8)
