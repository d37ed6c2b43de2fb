"""Training prints one line per epoch when its output is not a terminal."""

from __future__ import annotations

import io
import re

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from sketchsearch.train.config import TrainConfig
from sketchsearch.train.epoch_log import EpochLog, epoch_line
from sketchsearch.train.run import make_trainer

LINE = re.compile(
    r"^epoch (\d+)/2  loss \d+\.\d{4}  val mAP@all 0\.2500  "
    r"elapsed \d+:\d\d:\d\d  ETA \d+:\d\d:\d\d$"
)


def test_the_line_reads_epoch_loss_map_elapsed_and_eta() -> None:
    metrics = {"train/loss_epoch": torch.tensor(0.41234), "val/mAP@all": torch.tensor(0.34119)}
    line = epoch_line(3, 15, metrics, elapsed=83.0, per_epoch=25.0)
    assert line == "epoch 3/15  loss 0.4123  val mAP@all 0.3412  elapsed 0:01:23  ETA 0:05:00"
    assert epoch_line(1, 2, {}, 1.0, 1.0).startswith("epoch 1/2  loss n/a  val mAP@all n/a")


class _Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(2, 1)

    def training_step(self, batch: list[torch.Tensor], _: int) -> torch.Tensor:
        loss = self.layer(batch[0]).pow(2).mean()
        self.log("train/loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch: list[torch.Tensor], _: int) -> None:
        self.log("val/mAP@all", 0.25)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_a_tiny_fit_prints_one_line_per_epoch() -> None:
    data = DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=2)
    stream = io.StringIO()
    trainer = L.Trainer(
        max_epochs=2,
        limit_train_batches=2,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[EpochLog(stream)],
    )
    trainer.fit(_Tiny(), data, data)
    lines = stream.getvalue().splitlines()
    assert [LINE.match(line).group(1) for line in lines] == ["1", "2"]  # type: ignore[union-attr]
    assert lines[-1].endswith("ETA 0:00:00")


def test_the_trainer_logs_epochs_only_without_a_terminal(tmp_path, monkeypatch) -> None:
    config = TrainConfig(data="d", split="s", accelerator="cpu", devices="1")
    monkeypatch.setattr("sys.stderr", io.StringIO())
    trainer = make_trainer(config, tmp_path)
    assert any(isinstance(c, EpochLog) for c in trainer.callbacks)
