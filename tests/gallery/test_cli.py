"""`sketchsearch gallery info|remove|compact|export` through the real command group."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from vectors import clustered, items, model

from sketchsearch.cli.main import cli, run
from sketchsearch.data.errors import ExitCode
from sketchsearch.gallery import Gallery


def test_info_remove_compact_export(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "g"
    vectors = clustered(40, 16)
    with Gallery.create(folder, 16, model=model()) as gallery:
        gallery.add(vectors, items(40))
    assert run(cli, ["gallery", "info", str(folder), "--json"]) == ExitCode.OK
    facts = json.loads(capsys.readouterr().out)
    assert (facts["live"], facts["deleted"], facts["dim"]) == (40, 0, 16)

    code = run(cli, ["gallery", "remove", str(folder), "photos/00001.jpg", "--id", "2", "x.jpg"])
    out, err = capsys.readouterr()
    assert code == ExitCode.BAD_INPUT and "removed 2 item(s)" in out
    assert err.strip() == "not in the gallery: x.jpg"

    assert run(cli, ["gallery", "compact", str(folder)]) == ExitCode.OK
    assert "dropped 2 deleted item(s)" in capsys.readouterr().out

    assert run(cli, ["gallery", "export", str(folder), "--out", str(tmp_path / "v.npz")]) == 0
    data = np.load(tmp_path / "v.npz")
    assert data["ids"].tolist() == [0, *range(3, 40)]
    assert data["path"][0] == "photos/00000.jpg" and data["vectors"].shape == (38, 16)
    assert json.loads(str(data["manifest"]))["model"]["family"] == "family-a"


def test_cli_errors_are_one_line(tmp_path: Path, capsys) -> None:
    assert run(cli, ["gallery", "info", str(tmp_path)]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a gallery" in err and err.count("\n") == 1
    with Gallery.create(tmp_path / "g2", 16, model=model()):
        pass
    (tmp_path / "g2" / "index.bin").write_bytes(b"\0" * 10)
    assert run(cli, ["gallery", "info", str(tmp_path / "g2")]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert "index.bin" in err and err.count("\n") == 1
    with Gallery.create(tmp_path / "g3", 16, model=model()):
        pass
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "v.npz"  # a path under a file: an OS error, one line
    assert run(cli, ["gallery", "export", str(tmp_path / "g3"), "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "file" in err and err.count("\n") == 1
    assert run(cli, ["gallery", "remove", str(tmp_path / "g2")]) == ExitCode.USAGE
