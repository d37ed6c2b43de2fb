"""The ``--loss`` spec: which losses, with which weights. Torch-free, so the CLI can check it
before anything heavy is imported."""

from __future__ import annotations

import difflib
import math

LOSS_NAMES = ("contrastive", "cosine", "ce", "triplet", "infonce")


def unknown_loss(name: str) -> str:
    close = difflib.get_close_matches(name, LOSS_NAMES, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown loss '{name}' (known: {', '.join(LOSS_NAMES)}){hint}"


def parse_loss_spec(spec: str) -> dict[str, float]:
    """Parse ``"contrastive=1,ce=0.5"`` into weights; a bare name (``"infonce"``) weighs 1."""
    weights: dict[str, float] = {}
    for item in spec.split(","):
        name, sep, raw = (part.strip() for part in item.partition("="))
        if not name:
            raise ValueError(f"empty term in loss spec {spec!r}")
        if name not in LOSS_NAMES:
            raise ValueError(unknown_loss(name))
        if name in weights:
            raise ValueError(f"loss '{name}' given twice in {spec!r}")
        try:
            weight = float(raw) if sep else 1.0
        except ValueError:
            raise ValueError(f"weight of '{name}' is not a number: {raw!r}") from None
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"weight of '{name}' must be a finite number >= 0, got {raw!r}")
        weights[name] = weight
    if not any(weights.values()):
        raise ValueError(f"every weight in {spec!r} is zero")
    return weights
