"""The command line: `sketchsearch` (one group of lazily loaded subcommands) and `retrieve`.

Subcommands are imported only when invoked, so `--help` and the runtime stay free of torch.
This is the only place that turns SketchsearchError into exit codes.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from typing import Any

import click

from sketchsearch.data.errors import ExitCode, SketchsearchError
from sketchsearch.data.regular_file import max_file_bytes

# name -> ("module:attribute", one-line help); later layers register their groups here. The
# help is written here so that `sketchsearch --help` imports no subcommand.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "data": ("sketchsearch.cli.data_commands:data", "Read, split and generate image collections."),
    "gallery": (
        "sketchsearch.cli.gallery_group:gallery",
        "Build galleries from images; inspect and maintain them.",
    ),
    "embed": (
        "sketchsearch.cli.embed_command:embed",
        "Embed images into Parquet shards, here or on Ray (needs [shards]).",
    ),
    "retrieve": (
        "sketchsearch.cli.retrieve_command:retrieve",
        "Find the gallery images that match query images.",
    ),
    "evaluate": (
        "sketchsearch.cli.evaluate_command:evaluate",
        "Retrieval metrics of a model and gallery on a split.",
    ),
    "train": ("sketchsearch.cli.train_commands:train", "Train an embedding model (needs [train])."),
    "export": (
        "sketchsearch.cli.export_commands:export",
        "Export a checkpoint to ONNX or TensorRT (needs [train,export]).",
    ),
    "bench": (
        "sketchsearch.cli.bench_command:bench",
        "Export, measure latency and accuracy, write one table (needs [train,export]).",
    ),
    "analyze": (
        "sketchsearch.cli.analyze_commands:analyze",
        "Explain matches (Grad-CAM) and choose a no-match threshold (ROC).",
    ),
    "serve": (
        "sketchsearch.cli.serve_command:serve",
        "Serve searches over HTTP, with a sketch-drawing page (needs [serve]).",
    ),
}

DEBUG_ENV = "SKETCHSEARCH_DEBUG"


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def __init__(
        self, *args: Any, lazy: dict[str, tuple[str, str]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module_name, attribute = self.lazy[cmd_name][0].split(":")
            command = getattr(importlib.import_module(module_name), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.lazy[cmd_name][0]} is not a click command")
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List subcommands from the registry's help, without importing them."""
        rows = [(name, self.lazy[name][1]) for name in sorted(self.lazy)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in self.lazy:
            close = difflib.get_close_matches(name, self.list_commands(ctx), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            ctx.fail(f"No such command {name!r}.{hint}")
        return super().resolve_command(ctx, args)


def _debug_requested() -> bool:
    return "--debug" in sys.argv[1:] or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def run(command: click.Command, args: list[str] | None = None) -> int:
    """Run a command; a SketchsearchError becomes one line on stderr and its exit code."""
    try:
        max_file_bytes()  # a bad limit in the environment stops every command before it starts
        # Without standalone mode, click returns the code of ctx.exit(code) instead of exiting.
        result = command.main(args=args, standalone_mode=False)
    except SketchsearchError as err:
        if _debug_requested():
            raise
        click.echo(f"error: {err}", err=True)
        return int(err.exit_code)
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except OSError as err:  # a file the user named cannot be read or written
        if _debug_requested():
            raise
        where = f"{err.filename}: " if err.filename else ""
        click.echo(f"error: {where}{err.strerror or err}", err=True)
        return int(ExitCode.BAD_INPUT)
    except click.UsageError as err:  # one line, like every other user error
        where = err.ctx.command_path if err.ctx is not None else (command.name or "sketchsearch")
        click.echo(f"error: {err.format_message()} (see `{where} --help`)", err=True)
        return int(ExitCode.USAGE)
    except click.ClickException as err:
        err.show()
        return int(ExitCode.USAGE)
    except click.Abort:
        click.echo("aborted", err=True)
        return int(ExitCode.FAILURE)
    return result if isinstance(result, int) else int(ExitCode.OK)


@click.group(
    cls=LazyGroup, lazy=SUBCOMMANDS, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(package_name="sketchsearch")
@click.option("--debug", is_flag=True, help=f"Show tracebacks for errors (or set {DEBUG_ENV}=1).")
def cli(debug: bool) -> None:
    """sketchsearch: train, export, index and serve sketch/photo retrieval models.

    \b
    Exit codes: 0 ok, 1 internal error, 2 usage, 3 bad input, 4 mismatch, 5 busy.
    """


def main() -> None:
    sys.exit(run(cli))


def retrieve_main() -> None:
    """The `retrieve` console script: the same command as `sketchsearch retrieve`."""
    from sketchsearch.cli.retrieve_command import retrieve

    sys.exit(run(retrieve))
