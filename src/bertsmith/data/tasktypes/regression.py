"""Regression: a label is a number (within the task's ``label_range``), the head gives one value,
which is the prediction."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from ...distill import losses as L
from ...errors import DataError
from ..metrics import METRICS
from .base import TaskType

if TYPE_CHECKING:
    from ..tasks import Task


class Regression(TaskType):
    """MSE on gold values and MSE against the teacher's value (whatever the logit loss and temperature)."""

    name = "regression"
    named_labels = False
    label_dtype = np.float32
    metrics = {name: METRICS[name] for name in ("pearson", "spearmanr")}
    default_metrics = ("pearson", "spearmanr")

    def num_outputs(self, task: Task) -> int:
        return 1

    def parse_label(self, task: Task, value: str, where: str) -> float:
        column = task.label_column
        try:
            number = float(value)
        except ValueError:
            raise DataError(f"{where}, column {column!r}: {value!r} is not a number (regression label)") from None
        low, high = task.label_range or (-math.inf, math.inf)
        if not math.isfinite(number) or not low <= number <= high:
            raise DataError(f"{where}, column {column!r}: {value} is outside the task's label range [{low}, {high}]")
        return number

    def metric_inputs(self, task: Task, predictions: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if predictions.ndim == 2 and predictions.shape[1] == 1:
            predictions = predictions[:, 0]
        if predictions.ndim != 1:
            raise DataError(f"{task.name}: regression predictions must be [N] or [N, 1], got shape {predictions.shape}")
        return predictions, labels.astype(np.float64)

    def predictions(self, logits: np.ndarray) -> np.ndarray:
        return logits[:, 0]

    def mistakes(self, logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """The tenth of the examples (at least one) with the largest errors, largest first."""
        return np.argsort(-np.abs(logits[:, 0] - labels))[: max(1, len(labels) // 10)]

    def label_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(logits.squeeze(-1).float(), labels.float())

    def teacher_loss(
        self, student: torch.Tensor, teacher: torch.Tensor, *, logit_loss: str, temperature: float
    ) -> torch.Tensor:
        return L.logits_mse(student, teacher)

    def constant_level(self, task: Task, metric: str, labels: np.ndarray) -> float:
        """0: the correlation of a constant is undefined."""
        return 0.0

    def outputs(self, logits: torch.Tensor, names: list[str] | None) -> list[dict]:
        return [{"score": float(v)} for v in logits.float()[:, 0]]

    def output_fields(self, names: list[str] | None) -> list[str]:
        return ["score"]

    def csv_row(self, result: dict, names: list[str] | None) -> list:
        return [result["score"]]

    def label_summary(self, task: Task, labels: list) -> str:
        return f"{min(labels):.2f}..{max(labels):.2f}"


REGRESSION = Regression()
