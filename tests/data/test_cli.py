"""`sketchsearch data …` through the real command group, exit codes included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from imagetree import VARIANT, uniform_spec, write_image

from sketchsearch.cli.main import cli, run
from sketchsearch.data.errors import ExitCode


def invoke(capsys, *args: str) -> tuple[int, str, str]:
    code = run(cli, list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def root(sketchy_tree) -> Path:
    return sketchy_tree(uniform_spec(categories=4, photos=10, sketches=1))


def test_split_then_info(capsys, root: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "split.json"
    code, out, _ = invoke(
        capsys,
        "data",
        "split",
        str(root),
        "--out",
        str(out_file),
        "--seed",
        "7",
        "--fractions",
        "0.6,0.2,0.2",
    )
    assert code == ExitCode.OK
    assert "policy: soft, seed 7, fractions train 0.6, val 0.2, test 0.2" in out
    assert json.loads(out_file.read_text())["counts"]["val"] == {"sketch": 8, "photo": 8}
    code, out, _ = invoke(capsys, "data", "info", str(root), "--split", str(out_file))
    assert code == ExitCode.OK
    assert "categories: 4" in out and "photos: 40" in out and "warnings: none" in out
    assert "cat03" in out


def test_hard_split_with_classes_file(capsys, root: Path, tmp_path: Path) -> None:
    classes = tmp_path / "test_classes.txt"
    classes.write_text("# held out\ncat01\ncat02\n")
    code, _, _ = invoke(
        capsys,
        "data",
        "split",
        str(root),
        "--out",
        str(tmp_path / "s.json"),
        "--policy",
        "hard",
        "--classes-file",
        str(classes),
    )
    assert code == ExitCode.OK
    split = json.loads((tmp_path / "s.json").read_text())
    assert split["category_parts"]["test"] == ["cat01", "cat02"]
    assert split["test_categories_from"] == "test_classes.txt"


def test_warnings_are_counted_and_named_and_strict_fails(capsys, root: Path) -> None:
    write_image(root / "sketch" / VARIANT / "cat00" / "orphan-1.png")
    code, out, _ = invoke(capsys, "data", "info", str(root))
    assert code == ExitCode.OK
    assert "warnings: 1" in out and "orphan-sketch: 1" in out
    assert f"orphan-sketch: sketch/{VARIANT}/cat00/orphan-1.png" in out
    code, _, err = invoke(capsys, "data", "info", str(root), "--strict")
    assert code == ExitCode.BAD_INPUT
    assert err.count("\n") == 1 and "orphan-1.png" in err and "Traceback" not in err


def test_user_errors_are_one_line_with_documented_codes(capsys, root: Path, tmp_path: Path) -> None:
    split_file = tmp_path / "split.json"
    invoke(capsys, "data", "split", str(root), "--out", str(split_file))
    write_image(root / "photo" / VARIANT / "cat00" / "added.jpg")
    cases = [
        (
            ["data", "info", str(root), "--split", str(split_file)],
            ExitCode.MISMATCH,
            "made from a different file list",
        ),
        (
            ["data", "split", str(root), "--out", str(split_file), "--fractions", "1,1"],
            ExitCode.USAGE,
            "give exactly three numbers",
        ),
        (
            ["data", "split", str(root), "--out", str(split_file), "--fractions", "0.5,0.6,0.1"],
            ExitCode.USAGE,
            "sum to 1.2",
        ),
        (
            ["data", "info", str(tmp_path / "split.json"), "--layout", "sketchy"],
            ExitCode.USAGE,
            "is a file",
        ),
        (["data", "splt"], ExitCode.USAGE, "Did you mean 'split'?"),
    ]
    for args, code, message in cases:
        got, _, err = invoke(capsys, *args)
        assert got == code, (args, err)
        assert message in err, (args, err)
        assert "Traceback" not in err


def test_debug_shows_the_traceback(root: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("sys.argv", ["sketchsearch", "--debug"])
    with pytest.raises(Exception, match="exactly three numbers"):
        run(
            cli,
            [
                "--debug",
                "data",
                "split",
                str(root),
                "--out",
                str(tmp_path / "s.json"),
                "--fractions",
                "1",
            ],
        )
