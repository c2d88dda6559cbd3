"""The task: what a CTR model is trained and judged on, apart from the model (as TFRS' tasks.Ranking).

A model maps a CTRBatch to logits; the task turns logits and labels into the training loss and
a batch of predictions into metrics. Trainer.fit stays generic: another objective (a weighted
loss, a multi-task head) is another task, not an edit of the loop.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .batch import CTRBatch
from .metrics import ctr_metrics


class ClickTask:
    """Binary click prediction: BCE on logits; AUC, GAUC (grouped by user) and logloss."""

    def __init__(self):
        self.loss_fn = nn.BCEWithLogitsLoss()

    def loss(self, logits: torch.Tensor, batch: CTRBatch) -> torch.Tensor:
        return self.loss_fn(logits, batch.label)

    def metrics(self, labels: np.ndarray, probs: np.ndarray, groups: np.ndarray | None = None) -> dict[str, float]:
        return ctr_metrics(labels, probs, groups)
