"""The torch reference engine's entry in the backend table, declared through an entry point.

The runtime must not import the training layer, so this declaration reaches the table through
``[options.entry_points] sketchsearch.engines`` in setup.cfg. It imports neither torch nor
``torch_engine``: the table imports the opener only when a checkpoint is opened.
"""

from __future__ import annotations

from sketchsearch.runtime.engines.backend import Backend, Offer

_ENGINE = "sketchsearch.train.torch_engine"

BACKEND = Backend(
    name="torch",
    label="torch eager",
    suffixes=(".ckpt", ".pt", ".pth"),
    opener=f"{_ENGINE}:open_torch",
    probe=f"{_ENGINE}:check_torch",
    extra="train",
    offers=(
        Offer("torch-cpu", "torch eager (CPU)", device="cpu", precision="fp32", always=True),
        Offer("torch-cuda", "torch eager (CUDA)", device="cuda", precision="fp32"),
        Offer(
            "torch-cuda-fp16",
            "torch eager, fp16 autocast (CUDA)",
            device="cuda",
            autocast_fp16=True,
            precision="fp16 (autocast)",
        ),
    ),
)
