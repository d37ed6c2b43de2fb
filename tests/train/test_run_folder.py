"""The run folder beside a checkpoint: written by training, read by export and bench."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

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
    assert run == RunFolder(tmp_path / "lone.ckpt") and run.folder == tmp_path
    assert run.config == {} and run.split == {}
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


@pytest.mark.parametrize(
    "content",
    ["data: [unclosed\n", "- a list\n- not settings\n", "just words\n", ""],
    ids=["not-yaml", "a-list", "a-string", "empty"],
)
def test_a_config_that_is_not_settings_is_ignored_as_before(tmp_path: Path, content) -> None:
    """As export and the card read it before the run folder had one reader: a hint, never
    an error (a checkpoint must still export with a stray or hand-broken config.yaml)."""
    (tmp_path / "config.yaml").write_text(content)
    run = read_run_folder(tmp_path / "best.ckpt")
    assert run.config == {} and run.recipe() == {}
    assert run.named_split() is None and run.split_and_data() is None


def test_config_keys_are_taken_as_written(tmp_path: Path) -> None:
    """No `train --config` aliasing: `learning_rate` was never the card's `lr`."""
    (tmp_path / "config.yaml").write_text("learning_rate: 0.5\nbatch-size: 3\nseed: 1\n")
    assert read_run_folder(tmp_path / "best.ckpt").recipe() == {"seed": 1}


def test_nothing_is_read_until_asked_for(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "config.yaml").write_text("seed: 1\n")
    (tmp_path / "classes.txt").write_text("cat\n")
    reads: list[str] = []
    real = Path.read_text

    def counting(self: Path, *args, **kwargs) -> str:
        reads.append(self.name)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counting)
    run = read_run_folder(tmp_path / "best.ckpt")
    assert reads == []
    assert run.classes == ("cat",) and reads == ["classes.txt"]
    assert run.recipe() == {"seed": 1} and run.named_split() is None
    assert run.classes == ("cat",)
    assert reads == ["classes.txt", "config.yaml"]  # each at most once


def test_the_named_split_is_as_written_and_located_only_on_request(
    tiny_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, split_path = tiny_data
    project = tmp_path / "project"
    (project / "runs" / "a").mkdir(parents=True)
    (project / "data").symlink_to(root, target_is_directory=True)
    (project / "split.json").write_bytes(split_path.read_bytes())
    (project / "runs" / "a" / "config.yaml").write_text("data: data\nsplit: split.json\n")
    monkeypatch.chdir(tmp_path)
    run = read_run_folder(project / "runs" / "a" / "best.ckpt")
    assert run.named_split() == ("split.json", "data")
    assert run.split_and_data() == (project / "split.json", project / "data")


def test_a_linked_checkpoint_is_located_from_the_folders_above_its_target(
    tiny_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The search starts above the folder of the file the checkpoint resolves to."""
    root, split_path = tiny_data
    target = tmp_path / "store" / "runs" / "a"
    target.mkdir(parents=True)
    (target / "best.ckpt").write_bytes(b"")
    (tmp_path / "store" / "runs" / "split.json").write_bytes(split_path.read_bytes())
    link_folder = tmp_path / "links"
    link_folder.mkdir()
    (link_folder / "best.ckpt").symlink_to(target / "best.ckpt")
    (link_folder / "config.yaml").write_text(f"data: {root}\nsplit: split.json\n")
    monkeypatch.chdir(tmp_path)
    found = read_run_folder(link_folder / "best.ckpt").split_and_data()
    assert found == (tmp_path / "store" / "runs" / "split.json", root)


def test_split_txt_lines_without_a_colon_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "split.txt").write_text("a note\nfingerprint: sha256:abc\n")
    (tmp_path / "classes.txt").write_text("cat\n\ndog\n")
    run = read_run_folder(tmp_path / "best.ckpt")
    assert run.split == {"fingerprint": "sha256:abc"}
    (tmp_path / "split.txt").write_text(" fingerprint: sha256:indented\n")  # not the key
    assert read_run_folder(tmp_path / "best.ckpt").split_fingerprint is None
    assert run.classes == ("cat", "dog")
