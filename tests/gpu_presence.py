"""Whether this machine has what the GPU rows need: CUDA for torch, TensorRT on top."""

from __future__ import annotations


def has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def has_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except (ImportError, OSError):
        return False
    return has_cuda()
