"""Optimisers (Adam, AdamW, SGD) and schedules (cosine with warm-up, multistep)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = "adamw"
    lr: float = 3e-4
    weight_decay: float = 1e-4
    scheduler: str = "cosine"
    warmup_epochs: int = 1
    epochs: int = 30
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1


def build_optimisation(parameters: Iterable[nn.Parameter], config: OptimConfig) -> dict[str, Any]:
    """What Lightning's ``configure_optimizers`` returns; schedules step once per epoch."""
    params = list(parameters)
    if config.optimizer == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(
            params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay, nesterov=True
        )
    elif config.optimizer == "adam":
        optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.scheduler == "none":
        return {"optimizer": optimizer}
    if config.scheduler == "multistep":
        schedule: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=list(config.milestones), gamma=config.gamma
        )
    else:
        schedule = _cosine_with_warmup(optimizer, config.warmup_epochs, config.epochs)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}


def _cosine_with_warmup(
    optimizer: torch.optim.Optimizer, warmup: int, epochs: int
) -> torch.optim.lr_scheduler.LRScheduler:
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(1, epochs - warmup), eta_min=0.0
    )
    if warmup <= 0:
        return cosine
    linear = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=1.0 / (warmup + 1), end_factor=1.0, total_iters=warmup
    )
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [linear, cosine], milestones=[warmup])
