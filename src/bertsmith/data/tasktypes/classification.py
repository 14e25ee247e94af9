"""Single-label text classification: a label is one of the task's label names, the head gives one
logit per class, the prediction is the argmax."""

from __future__ import annotations

import math
from collections import Counter
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


class Classification(TaskType):
    """Cross-entropy on gold classes; KL with temperature or soft cross-entropy against the teacher."""

    name = "classification"
    named_labels = True
    label_dtype = np.int64
    metrics = {name: METRICS[name] for name in ("accuracy", "f1", "matthews_corrcoef")}
    default_metrics = ("accuracy",)

    def num_outputs(self, task: Task) -> int:
        return len(task.labels)

    def parse_label(self, task: Task, value: str, where: str) -> int:
        try:
            return task.labels.index(value.strip())
        except ValueError:
            raise DataError(
                f"{where}, column {task.label_column!r}: label {value!r} is not one of the task's labels "
                f"({', '.join(task.labels)})"
            ) from None

    def metric_inputs(self, task: Task, predictions: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if predictions.ndim == 2:
            if predictions.shape[1] != task.num_labels:
                raise DataError(
                    f"{task.name}: logits have {predictions.shape[1]} classes, the task has {task.num_labels}"
                )
            return predictions.argmax(axis=1), labels
        if predictions.ndim != 1:
            raise DataError(
                f"{task.name}: predictions must be logits [N, C] or classes [N], got shape {predictions.shape}"
            )
        return predictions, labels

    def predictions(self, logits: np.ndarray) -> np.ndarray:
        return logits.argmax(-1)

    def mistakes(self, logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return np.flatnonzero(self.predictions(logits) != labels)

    def label_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), labels)

    def teacher_loss(
        self, student: torch.Tensor, teacher: torch.Tensor, *, logit_loss: str, temperature: float
    ) -> torch.Tensor:
        if logit_loss == "kl":
            return L.kl_div(student, teacher, temperature)
        return L.soft_cross_entropy(student, teacher, temperature)

    def constant_level(self, task: Task, metric: str, labels: np.ndarray) -> float:
        """Matthews correlation: 0 (a constant correlates with nothing); any other metric: its best
        value over the constant classes."""
        if metric == "matthews_corrcoef":
            return 0.0
        values = [
            self.metrics[metric](labels, np.full(len(labels), c, dtype=labels.dtype)) for c in range(task.num_labels)
        ]
        return max(0.0 if math.isnan(v) else v for v in values)

    def outputs(self, logits: torch.Tensor, names: list[str] | None) -> list[dict]:
        """The most likely class with its probability, and every class's probability."""
        probs = torch.softmax(logits.float(), dim=-1).numpy()
        return [
            {
                "label": names[int(np.argmax(p))],
                "score": float(p.max()),
                "scores": {name: float(v) for name, v in zip(names, p)},
            }
            for p in probs
        ]

    def output_fields(self, names: list[str] | None) -> list[str]:
        return ["label", "score", *(f"p_{name}" for name in names)]

    def csv_row(self, result: dict, names: list[str] | None) -> list:
        return [result["label"], result["score"], *(result["scores"][n] for n in names)]

    def label_summary(self, task: Task, labels: list) -> str:
        counts = Counter(labels)
        return ", ".join(f"{task.labels[i]}: {counts[i]}" for i in range(len(task.labels)))


CLASSIFICATION = Classification()
