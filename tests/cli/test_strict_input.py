"""Numbers on the command line are finite (issue 13): nan and inf never get in, so they
never reach a JSON output as the non-JSON ``NaN``; and what is written as JSON is strict."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import pytest

from sketchsearch.cli.main import SUBCOMMANDS, cli, run
from sketchsearch.cli.options import FINITE_FLOAT, FiniteFloat
from sketchsearch.cli.retrieve_command import retrieve
from sketchsearch.data.strict_json import NonFiniteJSONError, dumps

NON_FINITE = ["nan", "NaN", "inf", "-inf", "Infinity"]

# Commands in files outside this change (cli/train_commands.py: the options it derives from
# TrainConfig's float fields, and find-lr's --min-lr/--max-lr); remove when they are converted.
NOT_YET_FINITE: set[str] = set()


def _commands(
    command: click.Command, path: tuple[str, ...]
) -> list[tuple[tuple[str, ...], click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None:
                found += _commands(sub, (*path, name))
    return found


def _float_options() -> list[tuple[tuple[str, ...], click.Parameter]]:
    commands = [
        (path, command)
        for name in SUBCOMMANDS
        for path, command in _commands(cli.get_command(click.Context(cli), name), (name,))
    ]
    return [
        (path, param)
        for path, command in commands
        for param in command.params
        if isinstance(param.type, click.types.FloatParamType)
    ]


def test_every_float_option_refuses_non_finite_numbers() -> None:
    options = _float_options()
    assert any(param.name == "min_score" for _, param in options)  # the walk finds them
    loose = [
        (*path, param.opts[0])
        for path, param in options
        if path[0] not in NOT_YET_FINITE and not isinstance(param.type, FiniteFloat)
    ]
    assert loose == []


def test_every_command_that_opens_an_engine_spells_its_inference_options_once() -> None:
    """``--provider``, ``--backend`` and ``--threads`` come from ``inference_options``: side by
    side, in that order, and ``--threads`` is at least 1 everywhere (``analyze`` once took 0)."""
    commands = [
        (path, command)
        for name in SUBCOMMANDS
        for path, command in _commands(cli.get_command(click.Context(cli), name), (name,))
    ]
    opening = {
        path: [param.name for param in command.params]
        for path, command in commands
        if any(param.name == "provider" for param in command.params)
    }
    assert {("retrieve",), ("serve",), ("embed",), ("gallery", "build")} <= set(opening)
    apart = [p for p, names in opening.items() if "provider,backend,threads" not in ",".join(names)]
    assert apart == []
    loose = [
        path
        for path, command in commands
        for param in command.params
        if path in opening and param.name == "threads"
        if not (isinstance(param.type, click.IntRange) and param.type.min == 1)
    ]
    assert loose == []


@pytest.mark.parametrize("text", NON_FINITE)
def test_the_type_refuses_non_finite_and_keeps_ranges(text: str) -> None:
    with pytest.raises(click.BadParameter, match="is not a finite number"):
        FINITE_FLOAT.convert(text, None, None)
    with pytest.raises(click.BadParameter, match="is not a finite number"):
        FiniteFloat(0, 1).convert(text, None, None)  # nan passes FloatRange's comparisons
    assert FINITE_FLOAT.convert("-1.5e3", None, None) == -1500.0
    with pytest.raises(click.BadParameter, match="range"):
        FiniteFloat(0, 1).convert("2", None, None)


@pytest.mark.parametrize("text", ["nan", "inf", "-inf"])
def test_retrieve_refuses_a_non_finite_min_score_before_opening_anything(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The engine does not exist: the option is refused first, in one line, exit code 2."""
    args = ["--engine", str(tmp_path / "none.onnx"), "--query", "q.png", "--json"]
    for command, prefix in ((cli, ["retrieve"]), (retrieve, [])):
        assert run(command, [*prefix, *args, "--min-score", text]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith("error: Invalid value for '--min-score'")
        assert "is not a finite number" in captured.err
        assert len(captured.err.strip().splitlines()) == 1
    assert run(retrieve, args) == 2  # without the option: the missing model, as before
    assert "model file not found" in capsys.readouterr().err


def test_roc_refuses_a_nan_false_positive_rate(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(cli, ["analyze", "roc", "--target-fpr", "nan"]) == 2
    err = capsys.readouterr().err
    assert "--target-fpr" in err and "is not a finite number" in err


def test_the_help_shows_plain_float_metavars(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(retrieve, ["--help"]) == 0
    out = capsys.readouterr().out
    assert "--min-score FLOAT" in out and "None" not in out


def test_strict_dumps_refuses_nan_and_names_where() -> None:
    assert json.loads(dumps({"a": [1.5, None]}, sort_keys=True)) == {"a": [1.5, None]}
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(NonFiniteJSONError, match=r"at \$\.results\[1\]\.score"):
            dumps({"results": [{"score": 1.0}, {"score": bad}]})
