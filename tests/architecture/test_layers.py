"""The layers import downwards only: data → gallery → runtime → train → export → benchmarks → cli.

Every reference counts, at module level or inside a function, because a lazy import upwards is
still a dependency upwards (and the import circle the command line once had): ``import`` and
``from … import`` (relative ones resolved), ``importlib.import_module("…")``, and a string
that names one of our modules (``"sketchsearch.x.y"`` or a registry's ``"….y:function"``),
which is how tables import lazily. Not counted: a module run in another process
(``[python, "-m", "sketchsearch.cli", …]``), which is a command, not an import. What no static
check sees (a module name assembled at run time) is for review.

The only files allowed to reach the command-line floor from a lower folder are *entry
scripts*: files kept at a documented path (``python export/to_onnx.py``,
``python -m sketchsearch.benchmarks.real.openmoji``) whose whole body is imports plus one
``if __name__ == "__main__":`` block. Nothing imports them. Entry points in setup.cfg obey the
same order: console scripts start on the floor, and plug-ins are library code, never ``cli``.
"""

from __future__ import annotations

import ast
import configparser
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAYERS = ("data", "gallery", "runtime", "train", "export", "benchmarks", "cli")
RANK = {name: rank for rank, name in enumerate(LAYERS)}
MODULE_NAME = re.compile(r"(sketchsearch(?:\.\w+)+)(?::\w+)?")


def layer_sources(layer: str) -> list[Path]:
    return sorted((REPO / layer).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(("sketchsearch", *parts[: -1 if parts[-1] == "__init__" else None]))


def imported_modules(tree: ast.AST, package: str = "sketchsearch") -> list[tuple[int, str]]:
    """Every module of ours that ``tree`` imports or names, wherever it stands.

    ``package`` is the importing module's package, for relative imports.
    """
    found: list[tuple[int, str]] = []
    docstrings = _docstring_ids(tree)
    commands = _commands_run_elsewhere(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            found.append((node.lineno, base))
            # `from sketchsearch import cli` names the layer in the alias
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            named = MODULE_NAME.fullmatch(node.value)
            if named and id(node) not in docstrings and id(node) not in commands:
                found.append((node.lineno, named[1]))
    return found


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if node.level == 0:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _docstring_ids(tree: ast.AST) -> set[int]:
    kinds = ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
    return {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, kinds)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }


def _commands_run_elsewhere(tree: ast.AST) -> set[int]:
    """The module names that follow ``"-m"`` in a list: `python -m` in another process."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.List | ast.Tuple):
            for flag, target in zip(node.elts, node.elts[1:], strict=False):
                if isinstance(flag, ast.Constant) and flag.value == "-m":
                    ids.add(id(target))
    return ids


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) >= 2 and parts[0] == "sketchsearch" and parts[1] in RANK:
        return parts[1]
    return None


def is_entry_script(tree: ast.Module) -> bool:
    """Imports and one ``if __name__ == "__main__":`` block, beside a docstring: nothing else."""
    body = list(tree.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    guards = [node for node in body if _is_main_guard(node)]
    rest = [node for node in body if not isinstance(node, ast.Import | ast.ImportFrom)]
    return len(guards) == 1 and rest == guards


def _is_main_guard(node: ast.stmt) -> bool:
    """Exactly ``if __name__ == "__main__":`` with no ``else``: it runs only as a script."""
    if not isinstance(node, ast.If) or node.orelse or not isinstance(node.test, ast.Compare):
        return False
    test = node.test
    return (
        isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.Eq)
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )


def upward_imports(path: Path, layer: str) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    if is_entry_script(tree):
        return []
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    problems = []
    for line, module in imported_modules(tree, package):
        target = layer_of(module)
        if target is not None and RANK[target] > RANK[layer]:
            problems.append(f"{path.relative_to(REPO)}:{line} imports {module} ({target})")
    return problems


@pytest.mark.parametrize("layer", LAYERS)
def test_no_layer_imports_a_layer_above_it(layer: str) -> None:
    problems = [p for path in layer_sources(layer) for p in upward_imports(path, layer)]
    assert not problems, "imports that go up the layers:\n" + "\n".join(problems)


def test_entry_scripts_are_imported_by_nobody() -> None:
    scripts = {
        module_name(path)
        for layer in LAYERS
        for path in layer_sources(layer)
        if is_entry_script(ast.parse(path.read_text(encoding="utf-8")))
    }
    assert "sketchsearch.export.to_onnx" in scripts  # the rule sees the shims it exempts
    users = [
        f"{path.relative_to(REPO)} imports {module}"
        for layer in LAYERS
        for path in layer_sources(layer)
        for _, module in imported_modules(ast.parse(path.read_text(encoding="utf-8")))
        if module in scripts
    ]
    assert not users


def entry_points() -> dict[str, list[tuple[str, str]]]:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    groups: dict[str, list[tuple[str, str]]] = {}
    for group, text in config["options.entry_points"].items():
        for line in filter(None, (raw.strip() for raw in text.splitlines())):
            name, _, target = (part.strip() for part in line.partition("="))
            groups.setdefault(group, []).append((name, target))
    return groups


def test_entry_points_follow_the_layers() -> None:
    """Console scripts start on the floor; plug-ins (engine backends …) are library code."""
    groups = entry_points()
    assert {layer_of(t) for _, t in groups.pop("console_scripts")} == {"cli"}
    assert groups, "the engine plug-in group should be declared"
    for group, declared in groups.items():
        for name, target in declared:
            module = target.partition(":")[0]
            assert layer_of(module) not in (None, "cli"), f"{group} {name} = {target}"
            assert (REPO / Path(*module.split(".")[1:])).with_suffix(".py").is_file(), target


def test_the_check_sees_every_kind_of_upward_reference() -> None:
    """The rule can fail: lazy, relative, registry and import_module references are caught."""
    source = (
        "def go():\n    from sketchsearch.cli.main import run\n    return run\n"
        "OPENER = 'sketchsearch.train.torch_engine:open_torch'\n"
        "PREFIX = 'sketchsearch.benchmarks.latency'\n"
        "import importlib\nimportlib.import_module('sketchsearch.export.graph')\n"
        "from ...cli import options\n"
        "COMMAND = ['python', '-m', 'sketchsearch.cli', 'data']\n"
        '"""sketchsearch.cli.main is named in prose here."""\n'
    )
    tree = ast.parse(source)
    layers = sorted(
        {str(layer_of(m)) for _, m in imported_modules(tree, "sketchsearch.runtime.engines")}
        - {"None"}
    )
    assert layers == ["benchmarks", "cli", "export", "train"]
    # line 8, `from ...cli import options` inside runtime/engines/, resolves to the floor
    assert (8, "sketchsearch.cli") in imported_modules(tree, "sketchsearch.runtime.engines")
    assert not is_entry_script(tree)
    shim = ast.parse(
        '"""doc"""\nimport sys\nfrom x import y\nif __name__ == "__main__":\n    y()\n'
    )
    assert is_entry_script(shim)
    sneaky = ast.parse('import y\nif __name__ != "__main__":\n    y.setup()\n')
    assert not is_entry_script(sneaky)
    with_else = ast.parse('import y\nif __name__ == "__main__":\n    y.a()\nelse:\n    y.b()\n')
    assert not is_entry_script(with_else)
