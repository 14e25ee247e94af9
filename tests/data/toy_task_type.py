"""A task type that lives in the tests only: ordinal classification (ordered classes such as 1 to 3
stars), with a loss that also penalises the distance of the expected rank from the gold one and a
metric that counts answers within one rank. It is how a new task type plugs in: a ``TaskType``
subclass and a ``register_task_type`` call, no other change to the package."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from bertsmith.data.metrics import METRICS
from bertsmith.data.tasktypes import Classification


def within_one(labels: np.ndarray, predictions: np.ndarray) -> float:
    """The share of predictions at most one rank away from the gold label."""
    return float(np.mean(np.abs(np.asarray(labels) - np.asarray(predictions)) <= 1))


class Ordinal(Classification):
    """Classes in rank order: cross-entropy plus the squared error of the expected rank."""

    name = "ordinal"
    metrics = {"within_one": within_one, "accuracy": METRICS["accuracy"]}
    default_metrics = ("accuracy", "within_one")

    def __init__(self) -> None:
        self.label_losses = 0  # calls of label_loss: the test checks training went through this type

    def label_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.label_losses += 1
        ranks = torch.arange(logits.shape[-1], device=logits.device, dtype=torch.float32)
        expected = (logits.float().softmax(-1) * ranks).sum(-1)
        return F.cross_entropy(logits.float(), labels) + F.mse_loss(expected, labels.float())
