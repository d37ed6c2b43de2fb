"""Two-process DDP on the CPU (gloo): `sketchsearch train --devices 2 --strategy ddp`.

Lightning's DDP launcher starts the second rank by re-running the command line, so the run is a
subprocess of the installed console script, as a user would start it. No MASTER_ADDR or
MASTER_PORT is needed: Lightning picks a free local port.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from sketchsearch.train.config import TrainConfig, read_yaml
from sketchsearch.train.run import make_trainer, prepare

CONSOLE = Path(sys.executable).parent / "sketchsearch"
METRICS = ("mAP@all", "mAP@200", "P@1", "recall@1", "recall@3", "cos_pos", "cos_neg")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ddp_run(tiny_data, tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], Path]:
    root, split = tiny_data
    out = tmp_path_factory.mktemp("ddp") / "run"
    command = [
        str(CONSOLE), "train", "--data", str(root), "--split", str(split), "--out", str(out),
        "--model", "test_efficientnet", "--img-size", "32", "--embed-dim", "16",
        "--batch-size", "2", "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp",
        "--epochs", "1", "--limit-train-batches", "2", "--workers", "0", "--no-test",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"  # one thread per rank: the machine has two cores
    done = subprocess.run(
        command, cwd=out.parent, env=env, capture_output=True, text=True, timeout=300
    )
    return done, out


def validation_rows(out: Path) -> list[dict[str, str]]:
    with (out / "metrics.csv").open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if row.get("val/mAP@all")]


def test_a_two_process_ddp_run_trains_and_validates(ddp_run) -> None:
    done, out = ddp_run
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Traceback" not in done.stderr
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in done.stderr  # the second process ran (gloo on CPU)
    assert (out / "last.ckpt").is_file() and (out / "best.ckpt").is_file()
    config = yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))
    assert (config["strategy"], config["devices"], config["accelerator"]) == ("ddp", "2", "cpu")
    rows = validation_rows(out)
    assert len(rows) == 1, rows
    for name in METRICS:
        low = -1.0 if name.startswith("cos_") else 0.0
        assert low <= float(rows[0][f"val/{name}"]) <= 1.0, name
    with (out / "metrics.csv").open(newline="") as handle:
        losses = [r["train/loss_epoch"] for r in csv.DictReader(handle) if r["train/loss_epoch"]]
    assert len(losses) == 1 and float(losses[0]) > 0


def test_ddp_validation_scores_the_whole_gallery(ddp_run, tmp_path: Path) -> None:
    """The metrics gathered over both ranks equal one process validating the same weights."""
    done, out = ddp_run
    assert done.returncode == 0, done.stderr[-4000:]
    config = TrainConfig.from_dict(read_yaml(out / "config.yaml"))
    single = replace(config, devices="1", strategy="auto", out=str(tmp_path))
    _, module, data = prepare(single)
    trainer = make_trainer(single, tmp_path, log=False)
    results = trainer.validate(
        module, datamodule=data, ckpt_path=str(out / "last.ckpt"), verbose=False
    )
    expected: dict[str, float] = {}
    for result in results:
        expected.update({k.split("/dataloader_idx")[0]: float(v) for k, v in result.items()})
    logged = validation_rows(out)[0]
    for name in METRICS:
        assert float(logged[f"val/{name}"]) == pytest.approx(expected[f"val/{name}"], abs=1e-4), (
            name
        )


def test_the_summary_is_printed_once(ddp_run) -> None:
    done, out = ddp_run
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.count(f"run folder {out}") == 1, done.stdout
