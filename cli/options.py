"""Options that several commands share, spelled once."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


class EngineOption(click.Option):
    """``--engine``, whose help lists the backend table; the table is read only for help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.purpose = kwargs.pop("purpose", "Model file")
        super().__init__(*args, **kwargs)

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        from sketchsearch.runtime.engines.table import describe_backends

        self.help = f"{self.purpose}: {describe_backends()}."
        return super().get_help_record(ctx)


class BackendOption(click.Option):
    """``--backend``, whose help names the backend table's entries; read only for help."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        from sketchsearch.runtime.engines.protocol import BackendUnavailableError
        from sketchsearch.runtime.engines.table import BUILTIN_BACKENDS, all_backends

        try:
            backends = all_backends()
        except BackendUnavailableError:  # a broken plugin: --help still works, built-ins only
            backends = BUILTIN_BACKENDS
        names = ", ".join(backend.name for backend in backends)
        self.help = (
            f"Engine backend by name ({names}), e.g. openvino for an .onnx. Default: the one "
            "MODEL.backends.json (written by `sketchsearch bench`) recommends on this machine, "
            "else the file type's."
        )
        return super().get_help_record(ctx)


def backend_option(command: F) -> F:
    """``--backend NAME`` for a command that opens ``--engine``."""
    return click.option("--backend", cls=BackendOption, metavar="NAME")(command)


PROVIDER_HELP = "onnxruntime provider: cpu, cuda, tensorrt."
BEST_PROVIDER_HELP = "onnxruntime provider: cpu, cuda, tensorrt (default: best)."


def inference_options(
    threads_help: str | None = None, provider_help: str = PROVIDER_HELP
) -> Callable[[F], F]:
    """``--provider``, ``--backend`` and ``--threads``, in that order: how every command that
    opens an ``--engine`` runs it (its values go to :func:`chosen_backend` and the engine)."""

    def apply(command: F) -> F:
        threads = click.option("--threads", type=click.IntRange(min=1), help=threads_help)
        command = backend_option(threads(command))
        return click.option("--provider", help=provider_help)(command)

    return apply


def chosen_backend(
    engine: Path,
    backend: str | None,
    workload: str,
    provider: str | None,
    threads: int | None = None,
) -> tuple[str | None, str | None]:
    """The backend and provider to open ``engine`` with; says which on stderr, and why.

    ``workload``: "single" (retrieve) or "batch" (gallery building, evaluation); ``threads``:
    the command's --threads (a recommendation measured with others is set aside).
    """
    from sketchsearch.runtime.engines.backend_choice import choose_backend

    choice = choose_backend(engine, backend, workload, provider, threads)
    if choice.note is not None:
        click.echo(choice.note, err=True)
    return choice.backend, provider or choice.device


class FiniteFloat(click.FloatRange):
    """A float option that refuses nan, inf and -inf (they would reach JSON as ``NaN``); an
    optional range as in ``click.FloatRange``. A refusal is a usage error (exit code 2)."""

    name = "float"  # the metavar stays FLOAT

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)

    def _describe_range(self) -> str:
        """Nothing in the help when there are no bounds (click would print ``x<=None``)."""
        if self.min is None and self.max is None:
            return ""
        return super()._describe_range()


FINITE_FLOAT = FiniteFloat()  # every float option without bounds


_STORE_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")  # store_table's, without its import


class GalleryRef(click.ParamType):  # type: ignore[type-arg]
    """A gallery folder (a ``Path``, checked to exist with ``must_exist``) or, kept as the
    string it is, a ``kind://…`` reference to another store (``qdrant://host:6333/photos``):
    a ``Path`` would fold its ``//``."""

    name = "gallery"

    def __init__(self, must_exist: bool = False) -> None:
        self._folder = click.Path(exists=must_exist, file_okay=False, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and _STORE_SCHEME.match(value):
            return value
        return self._folder.convert(value, param, ctx)


GALLERY_REF = GalleryRef()
