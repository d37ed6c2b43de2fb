"""Parity: the exported file must compute what the checkpoint computes, on real images.

The checkpoint runs in torch and the file in onnxruntime on the same preprocessed batch.
Cosine similarity per image says how close each embedding is; a small retrieval among the
verification images (each one the query, the rest the gallery) says whether rankings survive,
which is what users notice first when int8 goes wrong.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sketchsearch.data.errors import ExitCode, SketchsearchError
from sketchsearch.data.strict_json import dumps, undefined_as_null
from sketchsearch.runtime.pipeline import load_image
from sketchsearch.runtime.preprocess import PreprocessConfig

# precision -> (min cosine, top-1 retrieval agreement)
THRESHOLDS: dict[str, tuple[float, float]] = {
    "fp32": (0.9999, 0.0),
    "fp16": (0.999, 0.0),
    "int8": (0.98, 0.95),
}
TOP_K = 5
TIE = 1e-3  # cosine
NORM_TOLERANCE = 1e-2  # fp16 outputs are within 5e-4 of unit length
MIN_RANKING_IMAGES = 8
BATCH = 16


class VerificationError(SketchsearchError):
    """The exported model does not compute what the checkpoint does."""

    exit_code = ExitCode.MISMATCH


@dataclass(frozen=True)
class VerificationReport:
    precision: str
    images: int
    images_source: str
    min_cosine: float
    mean_cosine: float
    top1_agreement: float
    topk_overlap: float
    k: int
    max_norm_error: float
    has_nan: bool
    threshold_cosine: float
    threshold_top1: float
    passed: bool
    failures: list[str] = field(default_factory=list)
    skipped_images: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"cosine min {self.min_cosine:.6f} mean {self.mean_cosine:.6f} on {self.images} "
            f"images; top-1 agreement {self.top1_agreement:.3f}, top-{self.k} overlap "
            f"{self.topk_overlap:.3f}"
        )


def load_images(paths: Sequence[Path], config: PreprocessConfig) -> tuple[np.ndarray, list[str]]:
    arrays, skipped = [], []
    for path in paths:
        loaded = load_image(path, config)
        if loaded.image is None:
            skipped.append(f"{path}: {loaded.problem}")
        else:
            arrays.append(loaded.image)
    size = config.input_size
    batch = np.stack(arrays) if arrays else np.empty((0, size, size, 3), np.uint8)
    return batch, skipped


def compare(
    reference: np.ndarray,
    candidate: np.ndarray,
    precision: str,
    source: str,
    skipped: Sequence[str] = (),
) -> VerificationReport:
    """Score ``candidate`` embeddings against the ``reference`` ones, image by image."""
    has_nan = bool(np.isnan(candidate).any())
    ref = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    norms = np.linalg.norm(candidate, axis=1)
    cand = candidate / np.where(norms > 0, norms, 1.0)[:, None]
    cosine = np.nan_to_num((ref * cand).sum(axis=1), nan=-1.0)
    top1, overlap, k = _retrieval_agreement(ref, cand)
    min_cos, min_top1 = THRESHOLDS[precision]
    failures = []
    if has_nan:
        failures.append("the exported model outputs NaN")
    max_norm_error = float(np.abs(np.nan_to_num(norms, nan=np.inf) - 1.0).max(initial=0.0))
    if len(cosine) == 0:
        failures.append("no verification image could be read")
    elif cosine.min() < min_cos:
        failures.append(f"min cosine {cosine.min():.6f} < {min_cos} ({precision})")
    if len(cosine) and max_norm_error > NORM_TOLERANCE:
        failures.append(
            f"embeddings are not unit length (|norm - 1| up to {max_norm_error:.4f} > "
            f"{NORM_TOLERANCE}): the gallery and retrieve rely on unit vectors"
        )
    if min_top1 > 0 and len(cosine) < MIN_RANKING_IMAGES:
        failures.append(
            f"{precision} is checked on a retrieval among the verification images: it needs at "
            f"least {MIN_RANKING_IMAGES}, got {len(cosine)} (--verify-count, more images)"
        )
    elif top1 < min_top1:
        failures.append(f"top-1 retrieval agreement {top1:.3f} < {min_top1} ({precision})")
    return VerificationReport(
        precision=precision,
        images=len(cosine),
        images_source=source,
        min_cosine=float(cosine.min()) if len(cosine) else math.nan,
        mean_cosine=float(cosine.mean()) if len(cosine) else math.nan,
        top1_agreement=top1,
        topk_overlap=overlap,
        k=k,
        max_norm_error=max_norm_error,
        has_nan=has_nan,
        threshold_cosine=min_cos,
        threshold_top1=min_top1,
        passed=not failures,
        failures=failures,
        skipped_images=list(skipped),
    )


def _retrieval_agreement(ref: np.ndarray, cand: np.ndarray) -> tuple[float, float, int]:
    """Each image queries the others: same top-1, and the mean overlap of the top-k sets."""
    n = len(ref)
    if n < 2:
        return 1.0, 1.0, 0
    k = min(TOP_K, n - 1)
    ranks, all_scores = [], []
    for vectors in (ref, cand):
        scores = vectors @ vectors.T
        np.fill_diagonal(scores, -np.inf)
        all_scores.append(scores)
        ranks.append(np.argsort(-scores, axis=1, kind="stable")[:, :k])
    # The candidate's top-1 agrees when the reference scores it as high as its own top-1, up
    # to TIE: two near-identical images swapping places is not a ranking error.
    rows = np.arange(n)
    best = all_scores[0][rows, ranks[0][:, 0]]
    chosen = all_scores[0][rows, ranks[1][:, 0]]
    top1 = float((chosen >= best - TIE).mean())
    overlap = float(
        np.mean([len(set(a) & set(b)) / k for a, b in zip(ranks[0], ranks[1], strict=True)])
    )
    return top1, overlap, k


def write_report(report: VerificationReport, path: Path, extra: dict[str, Any]) -> None:
    path.write_text(dumps(undefined_as_null({**extra, **report.to_dict()}), indent=1) + "\n")


def onnx_embeddings(path: Path, images: np.ndarray, input_name: str, dtype: str) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = [
        session.run(["embedding"], {input_name: images[i : i + BATCH].astype(dtype)})[0]
        for i in range(0, len(images), BATCH)
    ]
    if not outputs:
        return np.empty((0, session.get_outputs()[0].shape[-1] or 0), np.float32)
    return np.concatenate(outputs).astype(np.float32)


def torch_embeddings(model: Any, images: np.ndarray, domain: str) -> np.ndarray:
    import torch

    chunks = []
    with torch.no_grad():
        for i in range(0, len(images), BATCH):
            batch = torch.from_numpy(images[i : i + BATCH]).permute(0, 3, 1, 2)
            chunks.append(model.embed(batch, domain).float().numpy())
    return np.concatenate(chunks) if chunks else np.empty((0, model.config.embed_dim), np.float32)
