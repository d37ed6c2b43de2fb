"""Every README figure names its machine and has one regeneration command (issue 13 §1)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "readme_figures.py"


@pytest.fixture(scope="module")
def figures() -> ModuleType:
    spec = importlib.util.spec_from_file_location("readme_figures", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def test_every_readme_figure_is_marked_with_its_machine_and_command(figures: ModuleType) -> None:
    """Fails when a table of measured numbers, an image or a pasted metrics output in README.md
    has no marker, or a marker has no entry in FIGURES (or the reverse)."""
    assert figures.check_readme((REPO / "README.md").read_text()) == []


def test_the_check_finds_an_unmarked_figure_and_an_unknown_marker(figures: ModuleType) -> None:
    name = figures.FIGURES[0].name
    machine = figures.FIGURES[0].machine
    visible = (
        f"*Produced on {machine}; regenerate: `python tools/readme_figures.py --only {name}`.*"
    )
    table = ["| what | ms |", "|---|---|", "| search | 0.23 |"]
    marked = ["## A", f"<!-- figure: {name} -->", visible, "", *table]
    unmarked = ["", "## B", "", *table, "", "<!-- figure: made-up -->", "![plot](x.png)"]
    text = "\n".join([*marked, *unmarked, "", "| pins | 10.13.3.9 |"])
    problems = figures.check_readme(text)
    assert "README.md:11: table without a <!-- figure: NAME --> marker" in problems
    assert "README.md:15: figure 'made-up' is not in FIGURES" in problems
    assert len([p for p in problems if p.startswith("FIGURES: ")]) == len(figures.FIGURES) - 1
    assert not any(p.startswith(("README.md:5:", "README.md:18:")) for p in problems)  # versions
    unlabelled = figures.check_readme(text.replace(visible, "*Produced somewhere.*"))
    assert f"README.md:3: figure {name!r} must be followed by" in "\n".join(unlabelled)


def test_dry_run_lists_every_figure_with_its_machine_and_commands(
    figures: ModuleType, tmp_path: Path
) -> None:
    out = tmp_path / "figs"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    for figure in figures.FIGURES:
        assert (
            f"README figure {figure.name} (pasted from {figure.machine}) -> {out}/" in done.stdout
        )
        for command in figure.commands:
            assert command.replace("{out}", f"{out}/{figure.name}") in done.stdout
    assert "{out}" not in done.stdout and not out.exists()  # a dry run writes nothing
    bad = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--only", "nope"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "unknown figure nope" in bad.stderr


def test_a_figure_is_regenerated_into_its_own_folder(figures: ModuleType, tmp_path: Path) -> None:
    """The cheapest figure, really run: the contact sheet, in OUT/NAME/, and figures.json."""
    out = tmp_path / "figs"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--only", "synth-contact-sheet", "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sheet = out / "synth-contact-sheet" / "synth-contact-sheet.png"
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"README figure synth-contact-sheet: {out}/synth-contact-sheet/ (done)" in done.stdout
    record = json.loads((out / "figures.json").read_text())
    assert record["figures"] == {"synth-contact-sheet": None}
    assert record["machine"]["fingerprint"] and record["command"]
