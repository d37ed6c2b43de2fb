"""What Grad-CAM explains for retrieval: the cosine between an image and a reference.

grad-cam's built-in targets score a classifier's class. A match is explained instead by the
similarity that ranked it: ``cos(embed(image), reference)``, with the reference the other
image's embedding, fixed. Its gradient points at the regions that make the image look like
the reference, so the heat-map answers "why did these two match?".
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sketchsearch.train.embedding_model import EmbeddingModel


class SimilarityTarget:
    """grad-cam target: called with one image's embedding [D], returns a scalar to explain."""

    def __init__(self, reference: Tensor) -> None:
        self.reference = F.normalize(reference.detach().flatten().float(), dim=0)

    def __call__(self, embedding: Tensor) -> Tensor:
        reference = self.reference.to(embedding.device)
        return F.cosine_similarity(embedding.flatten(), reference, dim=0)


class EmbeddingBranch(nn.Module):
    """One domain of the embedding model, as a module of float images.

    The model takes uint8 images, which carry no gradient; grad-cam needs a float input it
    can differentiate through. This feeds float32 images holding 0..255 values, which the
    model's normaliser converts with ``.float()`` (a no-op on float32, so the graph holds).
    """

    def __init__(self, model: EmbeddingModel, domain: str) -> None:
        super().__init__()
        self.model = model
        self.domain = domain

    def forward(self, images: Tensor) -> Tensor:
        return self.model.embed(images, self.domain)


def image_tensor(image: np.ndarray) -> Tensor:
    """uint8 H×W×3 → float32 [1, 3, H, W] holding 0..255."""
    return torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).float().contiguous()
