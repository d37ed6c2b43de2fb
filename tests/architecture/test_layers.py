"""The layers import downwards only: data → gallery → runtime → train → export → benchmarks → cli.

Every import counts, at module level or inside a function, because a lazy import upwards is
still a dependency upwards (and the import circle the command line once had). The only files
allowed to reach the command-line floor from a lower folder are *entry scripts*: files kept at
a documented path (``python export/to_onnx.py``,
``python -m sketchsearch.benchmarks.real.openmoji``) whose whole body is imports plus an
``if __name__ == "__main__":`` block. Nothing imports them.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAYERS = ("data", "gallery", "runtime", "train", "export", "benchmarks", "cli")
RANK = {name: rank for rank, name in enumerate(LAYERS)}
OPENER_REFERENCE = re.compile(r"(sketchsearch(?:\.\w+)+):\w+")


def layer_sources(layer: str) -> list[Path]:
    return sorted((REPO / layer).rglob("*.py"))


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """Every module an ``import`` or ``from … import`` names, wherever it stands."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # `from sketchsearch import cli` names the layer in the alias
            if node.module == "sketchsearch":
                found += [(node.lineno, f"sketchsearch.{a.name}") for a in node.names]
        elif isinstance(node, ast.Call) and _is_import_module_call(node):
            argument = node.args[0]
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                found.append((node.lineno, argument.value))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            # "sketchsearch.x.y:function", a registry entry imported later, is a reference too.
            # (A plain module name may be a `python -m` run in another process: not an import.)
            named = OPENER_REFERENCE.fullmatch(node.value)
            if named:
                found.append((node.lineno, named[1]))
    return found


def _is_import_module_call(node: ast.Call) -> bool:
    function = node.func
    name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
    return name in {"import_module", "__import__"} and bool(node.args)


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
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
    )


def upward_imports(path: Path, layer: str) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    if is_entry_script(tree):
        return []
    problems = []
    for line, module in imported_modules(tree):
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
        ".".join(("sketchsearch", *path.relative_to(REPO).with_suffix("").parts))
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


def test_the_check_sees_a_lazy_upward_import(tmp_path: Path) -> None:
    """The rule can fail: a function-level import of the floor from runtime is caught."""
    source = tmp_path / "sneaky.py"
    source.write_text(
        "def go():\n    from sketchsearch.cli.main import run\n    return run\n"
        "OPENER = 'sketchsearch.train.torch_engine:open_torch'\n"
        "import importlib\nimportlib.import_module('sketchsearch.export.graph')\n",
        encoding="utf-8",
    )
    tree = ast.parse(source.read_text(encoding="utf-8"))
    layers = sorted(str(layer_of(m)) for _, m in imported_modules(tree) if layer_of(m))
    assert layers == ["cli", "export", "train"]
    assert not is_entry_script(tree)
    shim = ast.parse(
        '"""doc"""\nimport sys\nfrom x import y\nif __name__ == "__main__":\n    y()\n'
    )
    assert is_entry_script(shim)
