"""`sketchsearch train` and `python train/train.py`: spellings, YAML configs, usage errors."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sketchsearch.cli.main import cli, run
from sketchsearch.cli.train_commands import resolve_config, train
from sketchsearch.data.errors import UsageError
from sketchsearch.train.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]
CONSOLE = Path(sys.executable).parent / "sketchsearch"
# What a user of the original research scripts typed; shlex splits it as their shell did.
RESEARCH = (
    'python train/train.py --batch_size=8 --optimizer_name="Adam" --lr=3e-3 '
    '--model_name="test_efficientnet"'
)
SMALL = ["--img-size", "32", "--embed-dim", "16", "--epochs", "1", "--workers", "0"]


def resolved(args: list[str]) -> TrainConfig:
    """The TrainConfig that `sketchsearch train ARGS` would train, without training."""
    ctx = train.make_context("train", list(args))
    return resolve_config(ctx, dict(ctx.params))


def data_args(tiny_data: tuple[Path, Path]) -> list[str]:
    root, split = tiny_data
    return ["--data", str(root), "--split", str(split)]


def written_config(out: Path) -> dict[str, object]:
    loaded = yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_the_research_spellings_train_a_run(tiny_data, tmp_path: Path) -> None:
    out = tmp_path / "run"
    original = shlex.split(RESEARCH)
    assert original[0] == "python"
    command = [sys.executable, *original[1:], *data_args(tiny_data)]
    command += ["--img_size", "32", "--embed_dim", "16", "--epochs", "1", "--workers", "0"]
    command += ["--out", str(out), "--no-test"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert f"run folder {out}" in done.stdout
    assert (out / "last.ckpt").is_file() and (out / "best.ckpt").is_file()
    assert not (out / "test_metrics.json").exists()  # --no-test
    config = written_config(out)
    assert config["optimizer"] == "adam"
    assert config["batch_size"] == 8
    assert config["model"] == "test_efficientnet"
    assert config["lr"] == pytest.approx(3e-3)
    assert (config["img_size"], config["embed_dim"], config["epochs"]) == (32, 16, 1)
    # The dashed spellings resolve to exactly the config that the research run wrote.
    dashed = [
        "--batch-size", "8", "--optimizer", "adam", "--lr", "0.003",
        "--model", "test_efficientnet", *data_args(tiny_data), *SMALL,
        "--out", str(out), "--no-test",
    ]  # fmt: skip
    assert resolved(dashed).to_dict() == config


@pytest.mark.parametrize(
    "spelling",
    [
        ["--batch_size=8", "--optimizer_name=Adam", "--lr=3e-3", "--model_name=test_efficientnet"],
        [
            "--batch-size=8",
            "--optimizer-name=ADAM",
            "--learning-rate=0.003",
            "--model-name",
            "test_efficientnet",
        ],
        [
            "--batch-size",
            "8",
            "--optimizer",
            "adam",
            "--learning_rate",
            "3e-3",
            "--model",
            "test_efficientnet",
        ],
    ],
    ids=["underscores", "dashed-aliases", "dashed"],
)
def test_every_spelling_resolves_to_the_same_config(tiny_data, spelling: list[str]) -> None:
    config = resolved([*spelling, *data_args(tiny_data), "--img_size", "32", "--embed-dim", "16"])
    assert (config.batch_size, config.optimizer, config.lr) == (8, "adam", pytest.approx(3e-3))
    assert (config.model, config.img_size, config.embed_dim) == ("test_efficientnet", 32, 16)
    untouched = TrainConfig(data=config.data, split=config.split)
    assert (config.loss, config.scheduler, config.seed) == (
        untouched.loss,
        untouched.scheduler,
        untouched.seed,
    )


def test_a_yaml_config_gives_values_and_the_command_line_overrides_them(
    tiny_data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, split = tiny_data
    settings = {
        "data": str(root),
        "split": str(split),
        "model": "test_efficientnet",
        "img-size": 32,  # dashed keys are read too
        "embed_dim": 16,
        "epochs": 1,
        "batch_size": 4,
        "optimizer": "SGD",
        "lr": 0.01,
        "workers": 0,
        "margin": 0.5,
        "test": True,
        "limit_train_batches": 1,
    }
    config_file = tmp_path / "train.yaml"
    config_file.write_text(yaml.safe_dump(settings), encoding="utf-8")
    out = tmp_path / "run"
    overrides = ["--batch-size", "8", "--lr", "3e-3", "--no-test", "--out", str(out)]
    code = run(cli, ["train", "--config", str(config_file), *overrides])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    written = written_config(out)
    # From the command line:
    assert (written["batch_size"], written["test"], written["out"]) == (8, False, str(out))
    assert written["lr"] == pytest.approx(3e-3)
    # From the YAML file (choices are case-insensitive there too):
    assert written["optimizer"] == "sgd"
    assert (written["model"], written["img_size"], written["embed_dim"]) == (
        "test_efficientnet",
        32,
        16,
    )
    assert (written["margin"], written["epochs"], written["limit_train_batches"]) == (0.5, 1, 1)
    # From the defaults:
    assert written["loss"] == TrainConfig(data="d", split="s").loss
    assert (out / "last.ckpt").is_file()
    assert not (out / "test_metrics.json").exists()
    # A run repeats from its own config.yaml.
    again = resolved(["--config", str(out / "config.yaml")])
    assert again.to_dict() == written


def write_yaml(path: Path, values: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def usage_error(args: list[str], capsys: pytest.CaptureFixture[str], code: int = 2) -> str:
    """Run in-process; the exit code must be `code`, and stderr must hold no traceback."""
    returned = run(cli, args)
    err = capsys.readouterr().err
    assert returned == code, err
    assert "Traceback" not in err
    return err


def test_an_unknown_yaml_key_is_one_line_with_a_suggestion(
    tiny_data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, split = tiny_data
    config_file = write_yaml(
        tmp_path / "typo.yaml", {"data": str(root), "split": str(split), "batch_sise": 4}
    )
    err = usage_error(["train", "--config", str(config_file)], capsys)
    assert len(err.strip().splitlines()) == 1, err
    assert "batch_sise" in err and "did you mean batch_size?" in err
    assert str(config_file) in err


def test_the_console_script_exits_2_on_an_unknown_yaml_key(tmp_path: Path) -> None:
    values = {"data": "d", "split": "s", "optimiser": "sgd"}
    config_file = write_yaml(tmp_path / "typo.yaml", values)
    done = subprocess.run(
        [str(CONSOLE), "train", "--config", str(config_file)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: {config_file}: unknown settings: optimiser (did you mean optimizer?)"
    ]
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("args", "named", "not_named"),
    [
        (["train", "--epochs", "1"], ["--data", "--split"], []),
        (["train", "--data", "somewhere"], ["--split"], ["--data"]),
        (["train", "--split", "split.json"], ["--data"], ["--split"]),
        (["train", "find-lr", "--steps", "20"], ["--data", "--split"], []),
    ],
    ids=["both", "split", "data", "find-lr"],
)
def test_missing_data_or_split_is_a_usage_error_naming_them(
    args: list[str],
    named: list[str],
    not_named: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = usage_error(args, capsys)
    message = next(line for line in err.splitlines() if line.startswith("error:"))
    assert "missing" in message
    for flag in named:
        assert flag in message
    for flag in not_named:
        assert flag not in message


def test_an_unknown_optimizer_is_a_usage_error(
    tiny_data, capsys: pytest.CaptureFixture[str]
) -> None:
    err = usage_error(["train", *data_args(tiny_data), "--optimizer", "rmsprop"], capsys)
    assert "rmsprop" in err and "adamw" in err


def test_an_unknown_model_is_a_usage_error(
    tiny_data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["train", *data_args(tiny_data), *SMALL, "--model", "not_a_model", "--out", str(out)]
    err = usage_error(args, capsys)
    assert "'not_a_model' is not a timm model" in err
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(
    "bad",
    [["--devices", "0"], ["--strategy", "not_a_strategy"], ["--precision", "13-bits"]],
    ids=["devices", "strategy", "precision"],
)
def test_bad_trainer_settings_are_usage_errors(
    tiny_data, tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: list[str]
) -> None:
    args = ["train", *data_args(tiny_data), *SMALL, "--model", "test_efficientnet", *bad]
    usage_error([*args, "--accelerator", "cpu", "--out", str(tmp_path / "run")], capsys)


def test_an_integer_batch_limit_stays_a_count(tiny_data) -> None:
    config = resolved([*data_args(tiny_data), "--limit-train-batches", "1"])
    assert isinstance(config.limit_train_batches, int) and config.limit_train_batches == 1


def test_milestones_and_yaml_types(tiny_data, tmp_path: Path) -> None:
    config = resolved([*data_args(tiny_data), "--scheduler", "multistep", "--milestones", "3,6"])
    assert config.milestones == (3, 6) and config.scheduler == "multistep"
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("lr: 3e-4\ndevices: 2\nepochs: '2'\nseparate_encoders: no\n")
    config = resolved([*data_args(tiny_data), "--config", str(yaml_file)])
    assert (config.lr, config.devices, config.epochs, config.separate_encoders) == (
        0.0003,
        "2",
        2,
        False,
    )
    yaml_file.write_text("embed_dim: 16.5\n")
    with pytest.raises(UsageError, match=r"embed_dim 16\.5: expected int"):
        resolved([*data_args(tiny_data), "--config", str(yaml_file)])
    with pytest.raises(UsageError, match="did you mean 'contrastive'"):
        resolved([*data_args(tiny_data), "--loss", "contrastve=1"])
