"""`retrieve` (also `sketchsearch retrieve`): query a gallery with images, torch-free.

Exit codes: 0 every query answered; 1 some query failed (unreadable image; the others are
still answered); 2 usage or configuration: a missing file, a model/gallery mismatch, an
unavailable backend.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import click

from sketchsearch.cli.options import (
    BEST_PROVIDER_HELP,
    FINITE_FLOAT,
    GALLERY_REF,
    EngineOption,
    inference_options,
)
from sketchsearch.data.errors import ExitCode, SketchsearchError

RERANK_CHOICES = ("none", "aqe", "kreciprocal")  # rerank.RERANK_METHODS, without numpy at start-up


def rerank_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--rerank`` and ``--rerank-k``, spelled once for every command that searches."""
    command = click.option(
        "--rerank-k",
        type=click.IntRange(min=1),
        help="How many of the best results --rerank re-orders (default 100).",
    )(command)
    return click.option(
        "--rerank",
        type=click.Choice(RERANK_CHOICES),
        default="none",
        show_default=True,
        help="Re-rank the best --rerank-k results: alpha query expansion or k-reciprocal.",
    )(command)


_PATH = click.Path(path_type=Path)


class RetrieveSetupError(SketchsearchError):
    """Anything that stops retrieve before the first query: always exit code 2."""

    exit_code = ExitCode.USAGE


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--engine", cls=EngineOption, type=_PATH, required=True)
@click.option(
    "--index",
    type=GALLERY_REF,
    help="Gallery folder or store reference, e.g. qdrant://HOST:6333/NAME (default: "
    "$SKETCHSEARCH_GALLERY, else the model's default gallery).",
)
@click.option("--query", "queries", type=_PATH, multiple=True, help="Query image (repeatable).")
@click.option("--queries", "query_dir", type=_PATH, help="Folder of query images.")
@click.option(
    "--queries-from",
    "query_list",
    type=click.File("rb"),  # bytes: a line that is not a path fails alone (query_stream)
    help="File listing query images, one per line ('-': standard input); answers are "
    "printed as the lines arrive.",
)
@click.option(
    "-k",
    "k",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="How many results to show for each query.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object per line and query (JSON Lines, stable), printed as answered.",
)
@click.option("--grid", type=_PATH, help="Write a PNG contact sheet of queries and results.")
@click.option(
    "--explain",
    type=_PATH,
    metavar="CKPT",
    help="Overlay Grad-CAM on the --grid tiles, from the model's checkpoint (needs [train]).",
)
@click.option("--cam-method", default="gradcam", show_default=True, help="With --explain.")
@inference_options("Inference threads.", BEST_PROVIDER_HELP)
@click.option(
    "--ef", type=click.IntRange(min=1), help="HNSW search breadth (default: the gallery's)."
)
@click.option(
    "--min-score",
    type=FINITE_FLOAT,
    help="Below it a result is 'no confident match' (default: the gallery's recorded one).",
)
@rerank_options
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def retrieve(
    engine: Path,
    index: Path | str | None,
    queries: tuple[Path, ...],
    query_dir: Path | None,
    query_list: BinaryIO | None,
    k: int,
    as_json: bool,
    grid: Path | None,
    explain: Path | None,
    cam_method: str,
    provider: str | None,
    backend: str | None,
    threads: int | None,
    ef: int | None,
    min_score: float | None,
    rerank: str,
    rerank_k: int | None,
    debug: bool,
) -> int:
    """Find the gallery images that match each query image.

    Answers are printed (and flushed) batch by batch as they are ready: a --queries-from
    pipe is answered as its lines arrive. --grid is drawn once every query is answered.

    \b
    Examples:
      retrieve --engine model.onnx --query sketch.png
      retrieve --engine model.onnx --index gallery/ --queries sketches/ -k 5 --json
      retrieve --engine model.plan --query sketch.png --grid results.png
      retrieve --engine model.onnx --query sketch.png --rerank aqe --rerank-k 50
      sketchsearch data list split.json:test --data DATA --domain sketch \\
          | retrieve --engine model.onnx --queries-from -

    \b
    Exit codes: 0 ok; 1 a query failed (the others are answered); 2 usage or
    configuration error (missing file, model/gallery mismatch, backend unavailable).
    """
    start = time.perf_counter()
    if explain is not None and grid is None:
        raise RetrieveSetupError("--explain draws on the result grid: also pass --grid out.png")
    if explain is not None and not explain.is_file():
        raise RetrieveSetupError(f"--explain {explain}: checkpoint not found")
    if grid is not None and not grid.resolve().parent.is_dir():
        raise RetrieveSetupError(f"--grid {grid}: folder {grid.parent} not found")
    try:
        from sketchsearch.runtime.rerank import rerank_config
        from sketchsearch.runtime.retriever_setup import (
            RetrieverConfig,
            open_retriever,
            query_stream,
        )

        reranking = rerank_config(rerank, rerank_k)
        paths = query_stream(queries, query_dir, query_list)  # a list is read as it is answered
        config = RetrieverConfig(
            engine, index, provider, threads, min_score, reranking, backend=backend
        )
        retriever, gallery_dir = open_retriever(config, lambda note: click.echo(note, err=True))
    except SketchsearchError as err:
        if debug:
            raise
        raise RetrieveSetupError(str(err)) from None
    with retriever.engine:  # closed after the output, which names its device
        with retriever.gallery:
            printer = _Printer(retriever, gallery_dir, k, as_json, keep=grid is not None)
            _answer_all(retriever, paths, printer, ef, debug)
            # what tells a miss (a category the gallery holds, not found) from an unknown one
            gallery_labels = retriever.gallery.labels() if grid is not None else None
        answers = printer.kept
        if grid is not None:
            from sketchsearch.runtime.output.grid import render_grid

            try:
                overlays = None
                if explain is not None:
                    overlays = _explain(explain, answers, retriever.engine.card.family, cam_method)
                render_grid(answers, grid, overlays=overlays, gallery_labels=gallery_labels)
            except (SketchsearchError, OSError) as err:  # after answering: still a setup problem
                if debug:
                    raise
                where = f"{err.filename}: " if isinstance(err, OSError) and err.filename else ""
                raise RetrieveSetupError(f"--grid: {where}{err}") from None
            click.echo(f"grid: {grid}", err=as_json)
        failed = printer.failed
        for answer in failed:
            click.echo(f"error: {answer.query}: {answer.error}", err=True)
        if not as_json:
            elapsed = time.perf_counter() - start
            click.echo(f"{printer.count} queries in {elapsed:.2f} s", err=True)
    return int(ExitCode.FAILURE) if failed else int(ExitCode.OK)


@dataclass
class _Printer:
    """Prints each batch's answers as soon as they are ready (and flushes), keeping only what
    comes after the last batch: the failures, and every answer only for ``--grid``."""

    retriever: Any
    gallery_dir: Path | str
    k: int
    as_json: bool
    keep: bool
    count: int = 0
    failed: list[Any] = field(default_factory=list)
    kept: list[Any] = field(default_factory=list)

    def show(self, answers: list[Any]) -> None:
        if self.as_json:
            lines = [_json_answer(a, self.retriever, self.gallery_dir, self.k) for a in answers]
            click.echo("\n".join(lines))
        else:
            click.echo(_table(answers, self.retriever))
        sys.stdout.flush()  # a reader of the pipe sees this batch now, not at exit
        self.count += len(answers)
        self.failed.extend(answer for answer in answers if answer.error)
        if self.keep:
            self.kept.extend(answers)


def _answer_all(
    retriever: Any, paths: Iterable[Any], printer: _Printer, ef: int | None, debug: bool
) -> None:
    """Answer the queries batch by batch as they are read; an error before the first answer
    (an empty list of queries) is a setup error, exit code 2, like any other."""
    from sketchsearch.runtime.retriever import QUERY_BATCH
    from sketchsearch.runtime.retriever_setup import ready_batches

    batches = retriever.search_batches(ready_batches(paths, QUERY_BATCH), k=printer.k, ef=ef)
    try:
        for answers in batches:
            printer.show(answers)
    except SketchsearchError as err:
        if debug or printer.count:
            raise
        raise RetrieveSetupError(str(err)) from None


def _explain(checkpoint: Path, answers: list[Any], family: str, method: str) -> Any:
    from sketchsearch.runtime.engines.protocol import BackendUnavailableError

    try:
        from sketchsearch.train.grid_explain import explain_answers
    except ImportError as err:
        raise BackendUnavailableError(
            f"--explain needs the [train] extra ({err.name} is not installed)"
        ) from None
    return explain_answers(checkpoint, answers, family, method)


def _json_answer(answer: Any, retriever: Any, gallery_dir: Path | str, k: int) -> str:
    """One line of strict JSON: a NaN is refused, never printed."""
    from sketchsearch.runtime.output.retrieve_json import EngineFacts, retrieve_line

    engine = retriever.engine
    facts = EngineFacts(
        str(engine.path), engine.backend, engine.device, engine.card.precision, engine.card.family
    )
    gallery = (str(gallery_dir), retriever.gallery.manifest.live)
    return retrieve_line(answer, facts, gallery, retriever.threshold, k)


def _table(answers: list[Any], retriever: Any) -> str:
    threshold = retriever.threshold
    lines = []
    for answer in answers:
        if answer.error:
            lines.append(f"{answer.query}: FAILED ({answer.error})")
            continue
        lines.append(
            f"{answer.query}  (decode {answer.decode_ms:.1f} ms, embed {answer.embed_ms:.1f} ms, "
            f"search {answer.search_ms:.2f} ms{_rerank_note(answer, retriever)})"
        )
        lines.append(f"  {'rank':>4}  {'score':>6}  {'label':<16} path")
        for match in answer.matches:
            mark = "" if match.confident else "  (below threshold)"
            lines.append(
                f"  {match.rank:>4}  {match.score:>6.3f}  {(match.label or '-'):<16} "
                f"{match.path}{mark}"
            )
        if threshold.value is not None and not answer.confident:
            best = answer.matches[0].score if answer.matches else float("nan")
            lines.append(
                f"  no confident match: best score {best:.3f} < {threshold.value:.3f} "
                f"({threshold.source})"
            )
    return "\n".join(lines)


def _rerank_note(answer: Any, retriever: Any) -> str:
    if not retriever.reranking.active:
        return ""
    return f", re-rank {answer.rerank_ms:.2f} ms by {retriever.reranking.describe()}"
