"""Every JSON the tool writes goes through ``sketchsearch.data.strict_json.dumps``.

Python's ``json.dump``/``json.dumps`` write ``NaN`` and ``Infinity``, which are not JSON: one
stray non-finite score makes ``jq`` and every other reader refuse the whole document. A scan of
the source, rather than a test per writer, so that a writer added later cannot slip past.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from sketchsearch.data.strict_json import NonFiniteJSONError, dumps, undefined_as_null

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("data", "gallery", "runtime", "train", "export", "benchmarks", "cli")
THE_WRITER = Path("data/strict_json.py")  # the one place allowed to call json.dumps
WRITERS = {"dump", "dumps"}


def _plain_json_writes(tree: ast.AST) -> list[int]:
    """Line numbers of ``json.dump(s)`` calls, however ``json`` or its functions were imported."""
    modules = {"json"}  # names bound to the json module
    functions: set[str] = set()  # names bound to json.dump / json.dumps
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name == "json"}
        elif isinstance(node, ast.ImportFrom) and node.module == "json":
            functions |= {a.asname or a.name for a in node.names if a.name in WRITERS}
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr in WRITERS
            and isinstance(func.value, ast.Name)
            and func.value.id in modules
        ) or (isinstance(func, ast.Name) and func.id in functions):
            lines.append(node.lineno)
    return lines


def _offenders() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if relative == THE_WRITER:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            found += [f"{relative}:{line}" for line in _plain_json_writes(tree)]
    return found


def test_no_module_writes_json_without_strict_json() -> None:
    offenders = _offenders()
    assert not offenders, (
        "these write JSON with json.dump(s), which writes NaN/Infinity; use "
        "sketchsearch.data.strict_json.dumps (json.dump(obj, f) -> f.write(dumps(obj))):\n"
        + "\n".join(offenders)
    )


@pytest.mark.parametrize(
    "source",
    [
        "import json\njson.dumps(1)",
        "import json\njson.dump(1, f)",
        "import json as j\nj.dumps(1)",
        "from json import dumps\ndumps(1)",
        "from json import dump as write\nwrite(1, f)",
        "def f():\n    import json\n    return json.dumps(1)",
    ],
)
def test_the_scan_sees_every_spelling(source: str) -> None:
    assert _plain_json_writes(ast.parse(source))


@pytest.mark.parametrize(
    "source",
    [
        "import json\njson.loads('1')",
        "from sketchsearch.data.strict_json import dumps\ndumps(1)",
        "text = 'print(json.dumps(marks))'",  # code for a child process is not a writer here
    ],
)
def test_the_scan_leaves_readers_and_strict_writes_alone(source: str) -> None:
    assert not _plain_json_writes(ast.parse(source))


def test_a_rejected_benchmark_figure_names_where_it_is() -> None:
    """What a switched writer now does with a NaN figure instead of writing ``NaN``."""
    with pytest.raises(NonFiniteJSONError, match=r"nan at \$\.runs\[1\]\.ms"):
        dumps({"runs": [{"ms": 1.0}, {"ms": float("nan")}]}, indent=1)


def test_undefined_measurements_become_null_where_a_writer_opts_in(tmp_path: Path) -> None:
    """An export whose model outputs NaN fails verification (exit 4) with its report written:
    the report's NaN cosines and infinite norm error are null, not a refusal (exit 1)."""
    import numpy as np

    from sketchsearch.export.verify import compare, write_report

    nested = {"a": [1.0, float("nan"), {"b": float("inf")}], "c": (2, -float("inf")), "d": "x"}
    assert undefined_as_null(nested) == {"a": [1.0, None, {"b": None}], "c": [2, None], "d": "x"}
    reference = np.random.default_rng(0).normal(size=(40, 8)).astype("float32")
    exported = reference.copy()
    exported[3, 2] = np.nan
    report = tmp_path / "model.verify.json"
    write_report(compare(reference, exported, "fp16", "x"), report, {})
    written = json.loads(report.read_text(), parse_constant=lambda name: pytest.fail(name))
    assert written["max_norm_error"] is None and written["failures"]
