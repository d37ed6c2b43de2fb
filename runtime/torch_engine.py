"""The torch reference engine: the checkpoint itself, for parity checks and benchmarks.

Needs the ``[train]`` extra; torch and the training code are imported only when it is built.
It is never what serving uses.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from sketchsearch.runtime.engine import BackendUnavailableError, check_batch


class TorchEngine:
    backend = "torch"

    def __init__(
        self,
        path: str | os.PathLike[str],
        device: str | None = None,
        autocast_fp16: bool = False,
        threads: int | None = None,
    ) -> None:
        try:
            import torch

            from sketchsearch.train.checkpoint_card import load_with_card
        except ImportError as err:
            raise BackendUnavailableError(
                f"{path}: the torch reference engine needs the [train] extra ({err.name} is "
                "not installed); serve an exported .onnx instead"
            ) from None
        self.path = Path(path)
        if threads:
            torch.set_num_threads(threads)
        loaded = load_with_card(self.path, "fp16" if autocast_fp16 else "fp32")
        self.card = loaded.card
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
        check_batch(images, self.card, self.path)
        torch = self._torch
        batch = torch.from_numpy(np.ascontiguousarray(images)).to(self._device)
        with (
            torch.inference_mode(),
            torch.autocast(self._device.type, dtype=torch.float16, enabled=self.autocast_fp16),
        ):
            embedding = self.model.embed(batch.permute(0, 3, 1, 2), "query")
        return np.asarray(embedding.float().cpu().numpy(), dtype=np.float32)

    def synchronize(self) -> None:
        if self._device.type == "cuda":
            self._torch.cuda.synchronize(self._device)

    def warmup(self, iterations: int = 2) -> None:
        size = self.card.input_size
        for _ in range(iterations):
            self.embed(np.zeros((1, size, size, 3), np.uint8))
