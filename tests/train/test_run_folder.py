"""The run folder beside a checkpoint: written by training, read by export and bench."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from sketchsearch.data.errors import UsageError
from sketchsearch.data.split_file import read_split
from sketchsearch.train.config import TrainConfig
from sketchsearch.train.run_folder import RunFolder, read_run_folder, write_run_folder


def config_for(data: Path, split: Path, out: Path) -> TrainConfig:
    return TrainConfig(data=str(data), split=str(split), out=str(out), lr=1e-3, resume=True)


def test_what_training_writes_reads_back(tiny_data, tmp_path: Path) -> None:
    root, split_path = tiny_data
    split = read_split(split_path)
    config = config_for(root, split_path, tmp_path / "run")
    write_run_folder(config, split, tmp_path / "run")

    run = read_run_folder(tmp_path / "run" / "best.ckpt")  # the checkpoint need not exist
    assert run.folder == tmp_path / "run"
    assert TrainConfig.from_dict(dict(run.config)) == replace(config, resume=False)
    assert run.classes == split.categories
    assert run.split_fingerprint == split.fingerprint
    assert run.split["split"] == str(split_path.resolve())
    assert run.recipe() == {
        "model": "resnet10t",
        "loss": config.loss,
        "epochs": 30,
        "batch_size": 64,
        "optimizer": "adamw",
        "lr": 1e-3,
        "seed": 0,
    }
    assert run.split_and_data() == (split_path, root)


def test_a_checkpoint_alone_has_an_empty_run_folder(tmp_path: Path) -> None:
    run = read_run_folder(tmp_path / "lone.ckpt")
    assert run == RunFolder(tmp_path)
    assert run.classes is None and run.split_fingerprint is None
    assert run.recipe() == {} and run.split_and_data() is None


def test_relative_paths_are_found_from_the_folders_above_the_run(
    tiny_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, split_path = tiny_data
    project = tmp_path / "project"
    (project / "runs" / "a").mkdir(parents=True)
    (project / "data").symlink_to(root, target_is_directory=True)
    (project / "split.json").write_bytes(split_path.read_bytes())
    (project / "runs" / "a" / "config.yaml").write_text("data: data\nsplit: split.json\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not where training ran
    found = read_run_folder(project / "runs" / "a" / "best.ckpt").split_and_data()
    assert found is not None
    assert found[0].resolve() == (project / "split.json").resolve()
    assert found[1].resolve() == root.resolve()


def test_a_config_naming_files_that_are_gone_gives_no_split(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(f"data: {tmp_path}\nsplit: {tmp_path / 'gone.json'}\n")
    assert read_run_folder(tmp_path / "best.ckpt").split_and_data() is None
    (tmp_path / "config.yaml").write_text("model: resnet10t\n")  # names no data at all
    assert read_run_folder(tmp_path / "best.ckpt").split_and_data() is None


def test_a_broken_config_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("data: [unclosed\n")
    with pytest.raises(UsageError, match=r"config\.yaml: not valid YAML"):
        read_run_folder(tmp_path / "best.ckpt")
    (tmp_path / "config.yaml").write_text("- a list\n- not settings\n")
    with pytest.raises(UsageError, match=r"config\.yaml: a config file holds"):
        read_run_folder(tmp_path / "best.ckpt")


def test_split_txt_lines_without_a_colon_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "split.txt").write_text("a note\nfingerprint: sha256:abc\n")
    (tmp_path / "classes.txt").write_text("cat\n\ndog\n")
    run = read_run_folder(tmp_path / "best.ckpt")
    assert run.split == {"fingerprint": "sha256:abc"}
    assert run.classes == ("cat", "dog")
