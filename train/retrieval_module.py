"""The Lightning module: triplet losses in training, full-gallery retrieval metrics in evaluation.

Validation embeds every query and every gallery image of the part (gathered across processes
under DDP) and scores them with the runtime's metric functions, never an in-batch gallery.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from sketchsearch.runtime.evaluation.metrics import evaluate_retrieval
from sketchsearch.train.embedding_model import EmbeddingModel
from sketchsearch.train.loss_spec import parse_loss_spec
from sketchsearch.train.losses import CombinedLoss, LossInputs
from sketchsearch.train.optimisation import OptimConfig, build_optimisation

MONITOR = "val/mAP@all"


class RetrievalModule(L.LightningModule):
    def __init__(
        self,
        model: EmbeddingModel,
        loss: str,
        margin: float,
        temperature: float,
        optim: dict[str, Any],
        run_info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        # The model is passed in; its config is saved so a checkpoint can rebuild it.
        # ``run_info`` (class names, split fingerprint, training summary) makes the checkpoint
        # self-describing for export's model card.
        self.save_hyperparameters(ignore=["model"])
        self.save_hyperparameters({"model_config": model.config.to_dict()})
        self.model = model
        self.loss = CombinedLoss(parse_loss_spec(loss), margin=margin, temperature=temperature)
        self.optim = OptimConfig(**optim)
        self._outputs: dict[int, list[dict[str, Tensor]]] = {}

    def training_step(self, batch: dict[str, Tensor], batch_index: int) -> Tensor:
        query, query_logits = self.model(batch["query"], "query")
        positive, positive_logits = self.model(batch["positive"], "gallery")
        negative = (
            self.model(batch["negative"], "gallery")[0] if self.loss.needs_negatives else None
        )
        inputs = LossInputs(
            query, positive, negative, query_logits, positive_logits, batch["label"]
        )
        total, terms = self.loss(inputs)
        self.log("train/loss", total, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True)
        terms_logged = {f"train/{k}": v for k, v in terms.items()}
        self.log_dict(terms_logged, on_step=False, on_epoch=True, sync_dist=True)
        return total

    def validation_step(
        self, batch: dict[str, Tensor], batch_index: int, dataloader_idx: int = 0
    ) -> None:
        self._collect(batch, dataloader_idx)

    def test_step(
        self, batch: dict[str, Tensor], batch_index: int, dataloader_idx: int = 0
    ) -> None:
        self._collect(batch, dataloader_idx)

    def on_validation_epoch_end(self) -> None:
        self._report("val")

    def on_test_epoch_end(self) -> None:
        self._report("test")

    def configure_optimizers(self) -> Any:
        return build_optimisation(self.model.parameters(), self.optim)

    def _collect(self, batch: dict[str, Tensor], loader: int) -> None:
        domain = "query" if loader == 0 else "gallery"
        self._outputs.setdefault(loader, []).append(
            {
                "embedding": self.model.embed(batch["image"], domain).float(),
                "label": batch["label"],
                "index": batch["index"],
            }
        )

    def _gathered(self, loader: int) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings and labels in dataset order, deduplicated across DDP ranks."""
        parts = self._outputs.get(loader, [])
        local = {k: torch.cat([p[k] for p in parts]) for k in ("embedding", "label", "index")}
        if self.trainer.world_size > 1:
            local = {k: self.all_gather(v).flatten(0, 1) for k, v in local.items()}
        index = local["index"].cpu().numpy()
        _, first = np.unique(index, return_index=True)  # distributed samplers pad with repeats
        order = first[np.argsort(index[first])]
        return local["embedding"].cpu().numpy()[order], local["label"].cpu().numpy()[order]

    def _report(self, stage: str) -> None:
        if len(self._outputs) < 2:
            self._outputs.clear()
            return
        queries, query_labels = self._gathered(0)
        gallery, gallery_labels = self._gathered(1)
        self._outputs.clear()
        scores = queries @ gallery.T
        relevant = query_labels[:, None] == gallery_labels[None, :]
        report = evaluate_retrieval(scores, relevant, precision_ks=(1, 10, 100), recall_ks=(1, 3))
        metrics = {k: float(v) for k, v in report.to_dict().items() if "@" in k}
        metrics["cos_pos"] = float(scores[relevant].mean()) if relevant.any() else float("nan")
        metrics["cos_neg"] = float(scores[~relevant].mean()) if (~relevant).any() else float("nan")
        # Every rank computed the same numbers from the gathered embeddings.
        self.log_dict({f"{stage}/{k}": v for k, v in metrics.items()}, sync_dist=True)
