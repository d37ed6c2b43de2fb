"""Every group's command list shows whole summaries, never one cut off with "...".

click shortens a subcommand's summary to what fits beside the longest command name and ends it
with "..." mid-sentence. The tree is walked from the root (every lazily registered command
loaded), so a command added later is checked too; help is rendered at the width click uses in
any terminal of 80 columns or more (it caps the text at 78).
"""

from __future__ import annotations

import re

import click
import pytest

from sketchsearch.cli.main import cli

WIDTH = 78  # click's width for a terminal of >= 80 columns: min(columns, 80) - 2
ROW = re.compile(r"^  (\S+)\s{2,}(\S.*)$")


def _groups(
    group: click.Group, parent: click.Context | None = None
) -> list[tuple[str, click.Context]]:
    name = group.name if parent is not None else "sketchsearch"
    ctx = click.Context(group, info_name=name, parent=parent, terminal_width=WIDTH)
    found = [(ctx.command_path, ctx)]
    for sub in group.list_commands(ctx):
        command = group.get_command(ctx, sub)
        assert command is not None, f"{ctx.command_path} lists {sub!r} but cannot load it"
        if isinstance(command, click.Group):
            found += _groups(command, ctx)
    return found


GROUPS = _groups(cli)


def _summaries(help_text: str) -> dict[str, str]:
    """Command name → its summary, wrapped lines joined, from a help page's Commands section."""
    rows: dict[str, str] = {}
    section = help_text.split("\nCommands:\n", 1)[1] if "\nCommands:\n" in help_text else ""
    last = None
    for line in section.splitlines():
        if not line.strip():
            break
        match = ROW.match(line)
        if match:
            last = match.group(1)
            rows[last] = match.group(2).strip()
        elif last is not None:
            rows[last] += " " + line.strip()
    return rows


def test_the_walk_reaches_every_group() -> None:
    paths = {path for path, _ in GROUPS}
    assert {"sketchsearch", "sketchsearch data", "sketchsearch gallery"} <= paths
    assert {"sketchsearch export", "sketchsearch analyze", "sketchsearch train"} <= paths


@pytest.mark.parametrize(("path", "ctx"), GROUPS, ids=[path for path, _ in GROUPS])
def test_no_summary_is_cut_off(path: str, ctx: click.Context) -> None:
    rows = _summaries(ctx.command.get_help(ctx))
    assert rows, f"{path} --help lists no commands"
    cut = {name: text for name, text in rows.items() if "..." in text}
    assert not cut, f"{path} --help cuts these summaries; shorten the first sentence: {cut}"
    unfinished = {name: text for name, text in rows.items() if not text.endswith(".")}
    assert not unfinished, f"{path} --help: summaries that are not a whole sentence: {unfinished}"


def test_the_parser_sees_what_click_cuts() -> None:
    """The check above would pass on nothing; here click really does cut a long summary."""

    @click.group(name="demo")
    def demo() -> None:
        """A group."""

    @demo.command(name="long-name")
    def long_name() -> None:
        """A summary long enough that click has to cut it short in the command list of a group."""

    ctx = click.Context(demo, info_name="demo", terminal_width=WIDTH)
    assert _summaries(demo.get_help(ctx))["long-name"].endswith("...")
