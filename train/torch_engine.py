"""The torch reference engine: the checkpoint itself, for parity checks and benchmarks.

Needs the ``[train]`` extra; torch and the training code are imported only when it is built.
It is never what serving uses.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from sketchsearch.runtime.engines.backend import OpenOptions
from sketchsearch.runtime.engines.lifecycle import EngineLifecycle
from sketchsearch.runtime.engines.protocol import BackendUnavailableError, check_batch

DEVICES = ("cpu", "cuda")
DOMAINS = ("query", "gallery")
NEEDS_TRAIN = "the torch reference engine needs the [train] extra"


def check_torch(device: str | None = None) -> None:
    """The backend table's probe: torch and a CUDA GPU when ``device`` is "cuda".

    Elsewhere there is nothing to probe: opening the checkpoint says what is missing, naming
    the file.
    """
    if device != "cuda":
        return
    try:
        import torch
    except ImportError as err:
        raise BackendUnavailableError(
            f"{NEEDS_TRAIN} ({err.name} is not installed): pip install 'sketchsearch[train]'"
        ) from None
    if not torch.cuda.is_available():
        raise BackendUnavailableError("torch.cuda.is_available() is False: no CUDA GPU")


def open_torch(path: Path, options: OpenOptions) -> TorchEngine:
    """The backend table's opener for checkpoints.

    A command's ``--provider`` is onnxruntime's option and is ignored here: the checkpoint
    runs on CUDA when there is a GPU, else on the CPU. A benchmark row (``strict_device``)
    runs on its ``device``, cpu or cuda.
    """
    device = options.device.lower() if options.strict_device and options.device else None
    if device is not None and device not in DEVICES:
        raise BackendUnavailableError(
            f"the torch reference engine runs on {' or '.join(DEVICES)}, not {device!r}"
        )
    return TorchEngine(
        path,
        device=device,
        autocast_fp16=options.autocast_fp16,
        threads=options.threads,
        domain=options.domain,
    )


class TorchEngine(EngineLifecycle):
    """A checkpoint as an engine.

    ``domain`` picks the encoder of a model trained with separate encoders, as the exported
    ``.query.onnx`` / ``.gallery.onnx`` files do: the card then says which one this engine
    holds (``card.embeds``), so the gallery builder and the retriever refuse the wrong side.
    Without ``domain`` it is the query encoder. A shared encoder's card stays "both".
    """

    backend = "torch"

    def __init__(
        self,
        path: str | os.PathLike[str],
        device: str | None = None,
        autocast_fp16: bool = False,
        threads: int | None = None,
        domain: str | None = None,
    ) -> None:
        if domain is not None and domain not in DOMAINS:
            raise ValueError(f"domain must be one of {DOMAINS}, not {domain!r}")
        try:
            import torch

            from sketchsearch.train.checkpoint_card import load_with_card
        except ImportError as err:
            raise BackendUnavailableError(
                f"{path}: {NEEDS_TRAIN} ({err.name} is not installed); serve an exported "
                ".onnx instead"
            ) from None
        if device == "cuda":
            check_torch(device)
        self.path = Path(path)
        if threads:
            torch.set_num_threads(threads)
        loaded = load_with_card(self.path, "fp16" if autocast_fp16 else "fp32")
        separate = bool(loaded.model.config.separate_encoders)
        self.domain = (domain or "query") if separate else "query"
        self.card = loaded.card.with_changes(domain=self.domain) if separate else loaded.card
        self._device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model: Any = loaded.model.to(self._device).eval()
        self.autocast_fp16 = autocast_fp16
        self._torch = torch

    @property
    def device(self) -> str:
        if self._device.type == "cuda":
            return str(self._torch.cuda.get_device_name(self._device))
        return "cpu"

    def embed(self, images: np.ndarray) -> np.ndarray:
        self._require_open()
        check_batch(images, self.card, self.path)
        torch = self._torch
        batch = torch.from_numpy(np.ascontiguousarray(images)).to(self._device)
        with (
            torch.inference_mode(),
            torch.autocast(self._device.type, dtype=torch.float16, enabled=self.autocast_fp16),
        ):
            embedding = self.model.embed(batch.permute(0, 3, 1, 2), self.domain)
        return np.asarray(embedding.float().cpu().numpy(), dtype=np.float32)

    def synchronize(self) -> None:
        """Wait for CUDA kernels still running; a no-op on the CPU."""
        if self._device.type == "cuda":
            self._torch.cuda.synchronize(self._device)

    def _release(self) -> None:
        """Drop the model; on CUDA, hand its cached memory back to the driver."""
        del self.model
        if self._device.type == "cuda":
            self._torch.cuda.empty_cache()
