"""`sketchsearch train find-lr`: Lightning's learning-rate finder on the tiny data set."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import pytest

from sketchsearch.cli.main import cli, run
from sketchsearch.train.config import TrainConfig
from sketchsearch.train.lr_finder import find_learning_rate

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# 12 training sketches at batch size 2: 6 batches per epoch, so 20 steps span 4 epochs.
SMALL = [
    "--model", "test_efficientnet", "--img-size", "32", "--embed-dim", "16",
    "--batch-size", "2", "--workers", "0", "--augment", "none",
]  # fmt: skip


def assert_png(path: Path) -> None:
    assert path.is_file()
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 100


def test_find_lr_prints_a_suggestion_and_saves_the_plot(
    tiny_data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, split = tiny_data
    out = tmp_path / "lr"
    args = ["train", "find-lr", "--data", str(root), "--split", str(split), *SMALL]
    args += ["--steps", "20", "--min-lr", "1e-5", "--max-lr", "1", "--out", str(out)]
    code = run(cli, args)
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    assert "Traceback" not in captured.err
    found = re.search(r"^suggested learning rate: (\S+)$", captured.out, re.MULTILINE)
    assert found, captured.out
    suggestion = float(found.group(1))
    assert 1e-5 <= suggestion <= 1.0
    assert f"wrote {out / 'lr_finder.png'}" in captured.out
    assert_png(out / "lr_finder.png")
    # The finder's temporary checkpoint is removed; it trains nothing it keeps.
    assert not list(out.glob("*.ckpt")) and not list(out.glob(".lr_find*"))


def test_the_sweep_is_not_cut_short_by_the_epoch_count(tiny_data, tmp_path: Path) -> None:
    root, split = tiny_data
    config = TrainConfig(
        data=str(root), split=str(split), out=str(tmp_path / "lr"), model="test_efficientnet",
        img_size=32, embed_dim=16, batch_size=2, workers=0, augment="none", epochs=1,
    )  # fmt: skip
    found = find_learning_rate(config, min_lr=1e-5, max_lr=1.0, steps=16)
    assert found.suggestion > 0
    assert_png(found.plot)
