"""`data split` records the data root relative to the split file, so `--split FILE:PART` finds
its images without `--data`; `--data` still overrides, and old split files still load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sketchsearch.cli.main import cli, run
from sketchsearch.data.errors import SplitFileError
from sketchsearch.data.split_file import SplitFile, read_split
from sketchsearch.data.split_spec import parse_split_spec

SPEC = {f"cat{c}": {f"p{c}{n}": 1 for n in range(5)} for c in range(2)}


@pytest.fixture
def project(sketchy_tree, tmp_path: Path, capsys) -> Path:
    """project/data (a Sketchy tree) and project/splits/split.json made by `data split`."""
    root = sketchy_tree(SPEC, root=tmp_path / "project" / "data")
    out = tmp_path / "project" / "splits" / "split.json"
    code = run(cli, ["data", "split", str(root), "--out", str(out), "--fractions", "0.6,0.2,0.2"])
    capsys.readouterr()
    assert code == 0
    return tmp_path / "project"


def listed(capsys, *args: str) -> tuple[int, list[str], str]:
    code = run(cli, ["data", "list", *args])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def test_the_split_records_its_data_root_relative_to_itself(project) -> None:
    split = project / "splits" / "split.json"
    assert json.loads(split.read_text())["data_root"] == "../data"
    assert read_split(split).recorded_root(split) == project / "data"


def test_a_split_finds_its_data_without_data_and_after_both_move(project, tmp_path, capsys) -> None:
    code, files, err = listed(capsys, f"{project / 'splits' / 'split.json'}:test")
    assert code == 0, err
    assert files and all(Path(f).is_file() and Path(f).is_relative_to(project) for f in files)
    moved = shutil.move(project, tmp_path / "elsewhere")  # data and split keep their places
    code, again, err = listed(capsys, f"{Path(moved) / 'splits' / 'split.json'}:test")
    assert code == 0, err
    assert [Path(f).relative_to(moved) for f in again] == [
        Path(f).relative_to(project) for f in files
    ]
    part = parse_split_spec(f"{Path(moved) / 'splits' / 'split.json'}:train", None)
    assert part.root == Path(moved) / "data"


def test_data_still_overrides_the_recorded_root(project, tmp_path, capsys) -> None:
    copy = shutil.copytree(project / "data", tmp_path / "copy")
    split = project / "splits" / "split.json"
    code, files, err = listed(capsys, f"{split}:test", "--data", str(copy))
    assert code == 0, err
    assert files and all(Path(f).is_relative_to(copy) for f in files)


def test_a_recorded_root_that_is_gone_names_the_path_tried(project, capsys) -> None:
    shutil.rmtree(project / "data")
    code, files, err = listed(capsys, f"{project / 'splits' / 'split.json'}:test")
    assert code == 2 and files == []
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert str(project / "data") in err and "--data" in err


def test_an_old_split_without_the_field_loads_and_asks_for_data(project, capsys) -> None:
    split = project / "splits" / "split.json"
    raw = json.loads(split.read_text())
    del raw["data_root"]  # written before the field existed, in the layout of then
    raw["format_version"] = 1
    split.write_text(json.dumps(raw))
    assert read_split(split).data_root is None
    code, _, err = listed(capsys, f"{split}:test")
    assert code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1
    assert "does not record its data root" in err and "--data" in err
    code, files, err = listed(capsys, f"{split}:test", "--data", str(project / "data"))
    assert code == 0 and files, err


@pytest.mark.parametrize("value", [3, "", ["data"], "/etc", "da\0ta"])
def test_a_data_root_that_is_not_a_path_is_refused(project, value) -> None:
    split = project / "splits" / "split.json"
    raw = json.loads(split.read_text())
    raw["data_root"] = value
    with pytest.raises(SplitFileError, match="data_root must be a folder path"):
        SplitFile.from_json(json.dumps(raw), str(split))
