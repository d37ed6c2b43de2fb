"""`retrieve --queries-from -` answers as the lines arrive: the first answers are printed
before the input ends. Proven with a real process and a pipe fed by hand."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sketchsearch.cli.main import cli, run
from sketchsearch.cli.retrieve_command import retrieve
from sketchsearch.data.split_spec import parse_split_spec
from sketchsearch.export.pipeline import ExportOptions, export_onnx
from sketchsearch.runtime.retriever_setup import ready_batches

WAIT_S = 120  # a generous bound on one answer (start-up included) on a loaded 2-core machine


@pytest.fixture(scope="module")
def served(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("streaming")
    (result,) = export_onnx(
        ExportOptions(checkpoint=tiny_run / "best.ckpt", output=folder / "model.onnx")
    )
    data, split = tiny_run.parent / "data", tiny_run.parent / "split.json"
    build = ["gallery", "build", "--engine", str(result.path), "--split", f"{split}:test"]
    code = run(cli, [*build, "--data", str(data), "--out", str(folder / "gallery"), "--quiet"])
    assert code == 0
    part = parse_split_spec(f"{split}:test", data)
    sketches = [part.path(item) for item in part.items("sketch")]
    return {
        "model": result.path,
        "gallery": folder / "gallery",
        "q1": sketches[0],
        "q2": sketches[-1],
    }


def _lines(stream) -> queue.Queue:
    """The stream's lines, read by a thread: a test can wait for one with a timeout."""
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
def test_the_first_answer_is_printed_before_the_input_ends(served, as_json) -> None:
    command = [sys.executable, "-m", "sketchsearch.cli", "retrieve", "--engine"]
    command += [str(served["model"]), "--index", str(served["gallery"]), "--queries-from", "-"]
    command += ["-k", "3", *(["--json"] if as_json else [])]
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out = _lines(process.stdout)
        process.stdin.write(f"{served['q1']}\n")
        process.stdin.flush()  # the input stays open: more queries may follow
        try:
            first = out.get(timeout=WAIT_S)
        except queue.Empty:
            pytest.fail(f"no answer within {WAIT_S} s while the input was still open")
        assert process.poll() is None  # still waiting for more queries
        assert str(served["q1"]) in first
        if as_json:
            assert json.loads(first)["results"]
        process.stdin.write(f"{served['q2']}\n")
        process.stdin.close()
        assert process.wait(timeout=WAIT_S) == 0, process.stderr.read()
        rest = []
        while (line := out.get(timeout=WAIT_S)) is not None:
            rest.append(line)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if as_json:
        answers = [json.loads(first), *(json.loads(line) for line in rest)]
        assert [a["query"] for a in answers] == [str(served["q1"]), str(served["q2"])]
    else:
        assert str(served["q2"]) in "".join(rest)


def test_an_empty_query_list_is_a_setup_error(served, tmp_path, capsys) -> None:
    empty = tmp_path / "queries.txt"
    empty.write_text("\n\n")
    args = ["--engine", str(served["model"]), "--index", str(served["gallery"])]
    code = run(retrieve, [*args, "--queries-from", str(empty)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: no query") and len(err.splitlines()) == 1


def test_a_long_list_is_answered_in_order_in_bounded_batches(served, tmp_path, capsys) -> None:
    listed = tmp_path / "queries.txt"
    names = [served["q1"], served["q2"]] * 40
    listed.write_text("".join(f"{name}\n" for name in names))
    args = ["--engine", str(served["model"]), "--index", str(served["gallery"]), "-k", "1"]
    code = run(retrieve, [*args, "--queries-from", str(listed), "--json"])
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and [a["query"] for a in answers] == [str(name) for name in names]


def test_ready_batches_yields_what_has_arrived_without_waiting_for_a_full_batch() -> None:
    more = threading.Event()

    def slow() -> Iterator[int]:
        yield 1
        yield 2
        more.wait(timeout=WAIT_S)  # the rest comes only once the first batch was taken
        yield from range(3, 40)

    batches = ready_batches(slow(), 32)
    assert next(batches) in ([1], [1, 2])  # the first item, and the second if already read
    more.set()
    rest = [item for batch in batches for item in batch]
    assert [1, 2, *range(3, 40)][-len(rest) :] == rest
    assert all(len(batch) <= 32 for batch in ready_batches(iter(range(100)), 32))


def test_ready_batches_raises_a_reading_error_after_the_items_before_it() -> None:
    def broken() -> Iterator[int]:
        yield 1
        raise OSError("the pipe broke")

    batches = ready_batches(broken(), 32)
    assert next(batches) == [1]
    with pytest.raises(OSError, match="the pipe broke"):
        next(batches)
