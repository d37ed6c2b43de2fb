"""`python_requires` in setup.cfg matches what the code needs.

Two checks against the declared minimum: every source parses with that version's grammar
(``ast.parse(feature_version=…)``), and no module uses a standard-library name that arrived
after it. Each check is shown to fail on a minimum that is too low.
"""

from __future__ import annotations

import ast
import configparser
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("data", "gallery", "runtime", "train", "export", "benchmarks", "cli", "tools")

# (module, name) -> the Python version that added it. Names this code base uses or is likely to.
ADDED_IN: dict[tuple[str, str], tuple[int, int]] = {
    ("enum", "StrEnum"): (3, 11),
    ("datetime", "UTC"): (3, 11),
    ("typing", "Self"): (3, 11),
    ("typing", "LiteralString"): (3, 11),
    ("typing", "Never"): (3, 11),
    ("typing", "assert_never"): (3, 11),
    ("typing", "reveal_type"): (3, 11),
    ("contextlib", "chdir"): (3, 11),
    ("hashlib", "file_digest"): (3, 11),
    ("asyncio", "TaskGroup"): (3, 11),
    ("tomllib", "*"): (3, 11),
    ("typing", "override"): (3, 12),
    ("itertools", "batched"): (3, 12),
    ("warnings", "deprecated"): (3, 13),
}


def declared_minimum() -> tuple[int, int]:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    found = re.fullmatch(r">=\s*(\d+)\.(\d+)", config["options"]["python_requires"].strip())
    assert found, "python_requires should read '>=X.Y'"
    return int(found[1]), int(found[2])


def sources() -> list[Path]:
    return sorted(p for layer in LAYERS for p in (REPO / layer).rglob("*.py"))


def grammar_problems(minimum: tuple[int, int]) -> list[str]:
    problems = []
    for path in sources():
        try:
            ast.parse(path.read_text(encoding="utf-8"), feature_version=minimum)
        except SyntaxError as err:
            problems.append(f"{path.relative_to(REPO)}:{err.lineno}: {err.msg}")
    return problems


def names_used(tree: ast.AST) -> set[tuple[str, str]]:
    """(module, name) for `from m import n`, `import m` (as (m, "*")) and `m.n` attributes."""
    used: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            used |= {(node.module, alias.name) for alias in node.names}
        elif isinstance(node, ast.Import):
            used |= {(alias.name, "*") for alias in node.names}
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            used.add((node.value.id, node.attr))
    return used


def too_new_names(minimum: tuple[int, int], trees: dict[str, ast.AST]) -> list[str]:
    return sorted(
        f"{where} uses {module}.{name} (Python {added[0]}.{added[1]})"
        for where, tree in trees.items()
        for (module, name) in names_used(tree)
        if (added := ADDED_IN.get((module, name))) is not None and added > minimum
    )


def parsed_sources() -> dict[str, ast.AST]:
    return {str(p.relative_to(REPO)): ast.parse(p.read_text(encoding="utf-8")) for p in sources()}


def test_sources_parse_with_the_declared_minimum_grammar() -> None:
    assert grammar_problems(declared_minimum()) == []


def test_no_standard_library_name_newer_than_the_declared_minimum() -> None:
    assert too_new_names(declared_minimum(), parsed_sources()) == []


def test_the_checks_fail_on_a_minimum_that_is_too_low() -> None:
    """3.10 was declared once while the code used StrEnum and datetime.UTC: that is caught."""
    problems = too_new_names((3, 10), parsed_sources())
    assert any("enum.StrEnum" in p for p in problems), problems
    assert any("datetime.UTC" in p for p in problems), problems
    with pytest.raises(SyntaxError):  # the grammar check: a 3.12 `type` statement under 3.11
        ast.parse("type Vector = list[float]\n", feature_version=(3, 11))


def test_the_declared_minimum_is_the_one_this_project_runs() -> None:
    assert declared_minimum() == (3, 11)
