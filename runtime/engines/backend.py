"""What declares an engine backend: one ``Backend`` value, read by everything that picks one.

A declaration is data and imports nothing of its backend: ``opener``, ``probe`` and
``card_reader`` name functions as ``"module:function"`` and are imported only when called, so
the table costs nothing to read and a backend that is not installed is found out when it is
opened, with the extra that installs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sketchsearch.runtime.engines.protocol import BackendUnavailableError, Engine
from sketchsearch.runtime.model_card import ModelCard


@dataclass(frozen=True)
class OpenOptions:
    """How to open one engine; a backend ignores what does not apply to it.

    From a command, ``device`` is its ``--provider`` option: onnxruntime's choice of execution
    provider, which onnxruntime may still fall back from when the provider fails to start, and
    which the other backends ignore. A benchmark row sets ``strict_device``: the engine must
    run on ``device`` (its ``Offer.device``), or opening it is a BackendUnavailableError.
    """

    device: str | None = None  # "cpu", "cuda", "tensorrt" or a provider name; None: the best
    threads: int | None = None
    batch_pipeline: bool = False  # runs beside decoding threads: no spin-waiting
    autocast_fp16: bool = False
    # The side a model with separate encoders embeds: "query", "gallery", or None (the query
    # side). An exported file holds one side already; a checkpoint holds both.
    domain: str | None = None
    strict_device: bool = False  # a benchmark row: on ``device`` exactly, never a fallback


@dataclass(frozen=True)
class Offer:
    """One device a backend offers: a row of the latency and accuracy tables."""

    key: str  # the row's backend column, e.g. "ort-cuda"
    label: str  # e.g. "onnxruntime CUDA"
    device: str | None = None  # OpenOptions.device; None: the backend's own choice
    autocast_fp16: bool = False
    precision: str | None = None  # None: the model card's
    always: bool = False  # listed whatever --providers names: the backend's reference row


@dataclass(frozen=True)
class Backend:
    """One engine backend: which files it runs, how it opens them, where and with what extra."""

    name: str  # Engine.backend of the engines it opens
    label: str
    suffixes: tuple[str, ...]  # lower case, with the dot: the files it runs by default
    opener: str  # "module:function", function(path: Path, options: OpenOptions) -> Engine
    offers: tuple[Offer, ...]
    extra: str | None = None  # the sketchsearch extra that installs it; None: always installed
    probe: str | None = None  # "module:function(device)": BackendUnavailableError if not here
    card_reader: str | None = None  # "module:function(path) -> ModelCard", without opening
    # Suffixes it also runs when chosen by name (``--backend``), without claiming them: the
    # OpenVINO backend claims its IR's ``.xml`` and also opens ``.onnx``, whose default stays
    # onnxruntime.
    also_opens: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        bad = [
            s for s in self.suffixes + self.also_opens if not s.startswith(".") or s != s.lower()
        ]
        if not self.suffixes or bad:
            raise ValueError(f"backend {self.name!r}: suffixes must be like '.onnx', not {bad}")
        for field, value in (("opener", self.opener), ("probe", self.probe)):
            if value is not None and ":" not in value:
                raise ValueError(f"backend {self.name!r}: {field} must be 'module:function'")

    def opens(self, path: Path) -> bool:
        """True when the backend runs ``path``: a suffix it claims or one it also opens."""
        return path.suffix.lower() in self.suffixes + self.also_opens

    @property
    def module(self) -> str:
        """The module that implements the backend."""
        return self.opener.partition(":")[0]

    def describe(self) -> str:
        """``.ckpt/.pt/.pth (torch eager, needs [train])``: for help texts and errors."""
        needs = f", needs [{self.extra}]" if self.extra else ""
        also = f", also {'/'.join(self.also_opens)} by --backend" if self.also_opens else ""
        return f"{'/'.join(self.suffixes)} ({self.label}{also}{needs})"

    def open(self, path: Path, options: OpenOptions | None = None) -> Engine:
        opener: Callable[[Path, OpenOptions], Engine] = self._function(self.opener)
        return opener(path, options or OpenOptions())

    def check_available(self, device: str | None = None) -> None:
        """BackendUnavailableError when this machine cannot run the backend on ``device``."""
        if self.probe is not None:
            self._function(self.probe)(device)

    def read_card(self, path: Path) -> ModelCard | None:
        """The model file's card without opening an engine; None when the backend has no reader."""
        if self.card_reader is None:
            return None
        card: ModelCard = self._function(self.card_reader)(path)
        return card

    def _function(self, reference: str) -> Any:
        """The function ``reference`` names; a missing third-party module says which extra.

        A module of sketchsearch itself that fails to import is a bug, not a missing extra:
        its ImportError is raised as it is.
        """
        module, _, name = reference.partition(":")
        try:
            return getattr(importlib.import_module(module), name)
        except ImportError as err:
            if _is_own_module(err.name):
                raise
            hint = f": pip install 'sketchsearch[{self.extra}]'" if self.extra else ""
            raise BackendUnavailableError(
                f"the {self.label} backend cannot be imported ({err.name or err} is not "
                f"installed){hint}"
            ) from None


def _is_own_module(name: str | None) -> bool:
    """True when the module an ImportError names is sketchsearch or one of its modules."""
    return name is not None and (name == "sketchsearch" or name.startswith("sketchsearch."))
