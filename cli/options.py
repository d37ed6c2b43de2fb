"""Options that several commands share, spelled once."""

from __future__ import annotations

from typing import Any

import click


class EngineOption(click.Option):
    """``--engine``, whose help lists the backend table; the table is read only for help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.purpose = kwargs.pop("purpose", "Model file")
        super().__init__(*args, **kwargs)

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        from sketchsearch.runtime.engines.table import describe_backends

        self.help = f"{self.purpose}: {describe_backends()}."
        return super().get_help_record(ctx)
