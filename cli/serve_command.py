"""`sketchsearch serve`: the retriever as an HTTP service with a sketch-drawing page.

Exit codes: 0 stopped by SIGINT/SIGTERM; 2 usage or configuration (a missing model, a
mismatched gallery, a port in use, the [serve] extra missing).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import click

from sketchsearch.cli.options import (
    BEST_PROVIDER_HELP,
    FINITE_FLOAT,
    GALLERY_REF,
    EngineOption,
    FiniteFloat,
    inference_options,
)
from sketchsearch.cli.retrieve_command import RetrieveSetupError, rerank_options
from sketchsearch.data.errors import SketchsearchError

API_KEY_ENV = "SKETCHSEARCH_API_KEY"
_PATH = click.Path(path_type=Path)
MiB = 1 << 20


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--engine", cls=EngineOption, type=_PATH, required=True)
@click.option(
    "--index",
    type=GALLERY_REF,
    help="Gallery folder or store reference, e.g. qdrant://HOST:6333/NAME (default: "
    "$SKETCHSEARCH_GALLERY, else the model's default gallery).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on; another than loopback exposes the service to the network.",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port (0: any free port, announced on the first line).")  # fmt: skip
@click.option(
    "--max-batch",
    type=click.IntRange(1, 256),
    default=8,
    show_default=True,
    help="Most images per engine call (dynamic batching; 1 turns it off).",
)
@click.option(
    "--max-wait-ms",
    type=FiniteFloat(0, 1000),
    default=5.0,
    show_default=True,
    help="Longest wait for more requests to fill a batch.",
)
@click.option(
    "--max-queue",
    type=click.IntRange(1, 100_000),
    default=64,
    show_default=True,
    help="Most searches in flight; more are answered 503 with Retry-After.",
)
@click.option(
    "--max-upload-mb",
    type=FiniteFloat(min=0, min_open=True, max=1024),
    default=20.0,
    show_default=True,
    help="Largest upload; larger ones are answered 413.",
)
@click.option(
    "--upload-timeout",
    type=FiniteFloat(min=0, min_open=True, max=3600),
    default=30.0,
    show_default=True,
    help="Seconds an upload may send nothing before it is answered 408.",
)
@click.option(
    "--api-key",
    envvar=API_KEY_ENV,
    help=f"Require `Authorization: Bearer KEY` on every endpoint but health (or ${API_KEY_ENV}, "
    "which other users cannot read from the process list).",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    help="Allow browser pages from this origin to call the API (repeatable; default: none).",
)
@click.option(
    "--reload-interval",
    type=FiniteFloat(min=0, max=3600),
    default=2.0,
    show_default=True,
    help="Seconds between checks for a new gallery generation (0: never reload).",
)
@inference_options("Inference threads.", BEST_PROVIDER_HELP)
@click.option(
    "--min-score",
    type=FINITE_FLOAT,
    help="Below it a result is 'no confident match' (default: the gallery's recorded one).",
)
@rerank_options
@click.option("--debug", is_flag=True, help="Show tracebacks and log every request.")
def serve(
    engine: Path,
    index: Path | str | None,
    host: str,
    port: int,
    max_batch: int,
    max_wait_ms: float,
    max_queue: int,
    max_upload_mb: float,
    upload_timeout: float,
    api_key: str | None,
    cors_origins: tuple[str, ...],
    reload_interval: float,
    provider: str | None,
    backend: str | None,
    threads: int | None,
    min_score: float | None,
    rerank: str,
    rerank_k: int | None,
    debug: bool,
) -> int:
    """Serve searches over HTTP, with a sketch-drawing page at /.

    The gallery resolves as in `retrieve`. A new generation committed by `sketchsearch
    gallery add` is answered from within --reload-interval seconds, without a restart.
    The API is documented at /docs (offline) and /openapi.json.

    \b
    Examples:
      sketchsearch serve --engine model.onnx --index gallery/
      sketchsearch serve --engine model.onnx --port 0 --max-batch 16 --max-wait-ms 10
      SKETCHSEARCH_API_KEY=secret sketchsearch serve --engine model.onnx --host 0.0.0.0

    \b
    Exit codes: 0 stopped (Ctrl-C, SIGTERM); 2 usage or configuration error.
    """
    try:
        _require_serve_extra()
        from sketchsearch.runtime.service.server import bind, is_loopback, url_of
        from sketchsearch.runtime.service.server import serve as run
        from sketchsearch.runtime.service.service import Service, ServiceSettings
    except ImportError as err:
        raise RetrieveSetupError(
            f"serve needs the [serve] extra ({err.name} is not installed): "
            "pip install 'sketchsearch[serve]'"
        ) from None
    if api_key is not None and not api_key.strip():
        raise RetrieveSetupError(f"--api-key (or ${API_KEY_ENV}) is empty")
    try:
        from sketchsearch.runtime.rerank import rerank_config
        from sketchsearch.runtime.retriever_setup import RetrieverConfig, open_retriever

        settings = ServiceSettings(
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            max_queue=max_queue,
            max_upload_bytes=max(1, math.floor(max_upload_mb * MiB)),
            upload_timeout=upload_timeout,
            api_key=api_key,
            cors_origins=cors_origins,
            reload_interval=reload_interval,
        )
        config = RetrieverConfig(
            engine, index, provider, threads, min_score, rerank_config(rerank, rerank_k),
            backend=backend,
        )  # fmt: skip
        sock = bind(host, port)
        try:
            retriever, gallery_dir = open_retriever(config, _say_err)
        except BaseException:
            sock.close()
            raise
    except SketchsearchError as err:
        if debug:
            raise
        raise RetrieveSetupError(str(err)) from None
    if not is_loopback(host) and api_key is None:
        _say_err(
            f"warning: listening on {host} without --api-key: anyone who can reach this "
            "machine can search the gallery and fetch its images"
        )
    from sketchsearch.runtime.retriever import model_ref

    service = Service(retriever, gallery_dir, settings, notify=_say_err)
    manifest = retriever.gallery.manifest
    click.echo(
        f"serving {url_of(sock)} (model {model_ref(retriever.engine.card).describe()}; gallery "
        f"{gallery_dir}, {manifest.live} items, generation {manifest.generation}; "
        f"batching up to {max_batch} within {max_wait_ms:g} ms; Ctrl-C stops)"
    )
    sys.stdout.flush()  # a parent process reads the URL now
    with retriever.engine:
        run(service, sock, debug=debug)
    return 0


def _require_serve_extra() -> None:
    """Every package of the [serve] extra, before anything is bound or printed: python-multipart
    is imported only by the first form upload, which would otherwise be a 500."""
    import importlib.util

    for module in ("fastapi", "uvicorn", "prometheus_client", "python_multipart"):
        if importlib.util.find_spec(module) is None:  # python_multipart: python-multipart
            raise ImportError(name=module)


def _say_err(line: str) -> None:
    click.echo(line, err=True)
