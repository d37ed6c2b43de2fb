"""Options that several commands share, spelled once."""

from __future__ import annotations

import math
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
