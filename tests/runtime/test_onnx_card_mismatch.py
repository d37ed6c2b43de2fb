"""A model card that disagrees with its graph is refused at open, naming both values.

The mismatching files are real exports whose card was rewritten (what an edited card, or a
card copied onto another export, looks like), never hand-built graphs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx
import pytest

from sketchsearch.cli.main import cli, run
from sketchsearch.cli.retrieve_command import retrieve
from sketchsearch.export.pipeline import ExportOptions, export_onnx
from sketchsearch.runtime.engines.onnx_engine import OnnxEngine
from sketchsearch.runtime.model_card import CARD_KEY, ModelCardError, read_onnx_card


@pytest.fixture(scope="module")
def exported(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("card-mismatch")
    (result,) = export_onnx(
        ExportOptions(checkpoint=tiny_run / "best.ckpt", output=folder / "model.onnx")
    )
    return result.path


def with_card_edit(source: Path, target: Path, edit: Any) -> Path:
    """A copy of ``source`` whose card is ``edit(card dict)``; the graph is untouched."""
    model = onnx.load(str(source))
    (prop,) = [prop for prop in model.metadata_props if prop.key == CARD_KEY]
    card = json.loads(prop.value)
    edit(card)
    prop.value = json.dumps(card)
    onnx.save(model, str(target))
    return target


def _size(card: dict) -> None:
    card["preprocess"]["input_size"] = 48  # the graph takes 32


def _dtype(card: dict) -> None:
    card["input_dtype"] = "float32"  # the graph takes uint8


def _dim(card: dict) -> None:
    card["embed_dim"] = 32  # the graph gives 16


def _name(card: dict) -> None:
    card["input_name"] = "pixels"  # the graph's input is "images"


EDITS = [
    (_size, "input size: card 48, graph 32x32"),
    (_dtype, "input dtype: card float32, graph tensor(uint8)"),
    (_dim, "embedding size: card 32, graph 16"),
    (_name, "input name: card 'pixels', graph ['images']"),
]


@pytest.mark.parametrize(("edit", "message"), EDITS, ids=[e.__name__ for e, _ in EDITS])
def test_the_engine_refuses_a_card_that_disagrees_with_the_graph(
    exported, tmp_path, edit, message
) -> None:
    edited = with_card_edit(exported, tmp_path / "edited.onnx", edit)
    with pytest.raises(ModelCardError, match="disagrees with the graph") as caught:
        OnnxEngine(edited)
    assert message in str(caught.value) and "re-export" in str(caught.value)
    assert caught.value.exit_code == 3
    with pytest.raises(ModelCardError, match="disagrees with the graph"):
        read_onnx_card(edited)  # what gallery and TensorRT builds read


def test_every_disagreement_is_listed_at_once(exported, tmp_path) -> None:
    def both(card: dict) -> None:
        _size(card)
        _dim(card)

    edited = with_card_edit(exported, tmp_path / "edited.onnx", both)
    with pytest.raises(ModelCardError) as caught:
        OnnxEngine(edited)
    assert "input size: card 48" in str(caught.value)
    assert "embedding size: card 32" in str(caught.value)


def test_an_unedited_export_opens_and_embeds(exported) -> None:
    import numpy as np

    with OnnxEngine(exported) as engine:
        size = engine.card.input_size
        assert engine.embed(np.zeros((2, size, size, 3), np.uint8)).shape == (2, 16)


def test_commands_refuse_it_in_one_line_without_a_traceback(
    exported, tiny_run, tmp_path, capsys
) -> None:
    edited = with_card_edit(exported, tmp_path / "edited.onnx", _size)
    data, split = tiny_run.parent / "data", tiny_run.parent / "split.json"
    query = next((data / "sketch").rglob("*.png"))
    # retrieve: anything before the first query is exit code 2 (README, "Errors and exit codes")
    code = run(retrieve, ["--engine", str(edited), "--index", str(tmp_path), "--query", str(query)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "input size: card 48, graph 32x32" in err
    build = ["gallery", "build", "--engine", str(edited), "--split", f"{split}:test"]
    code = run(cli, [*build, "--data", str(data), "--out", str(tmp_path / "g"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "input size: card 48, graph 32x32" in err
