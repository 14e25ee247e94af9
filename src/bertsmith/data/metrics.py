"""Task metrics (GLUE's): accuracy, binary F1, Matthews correlation, Pearson and Spearman correlation.

Computed with scikit-learn and scipy. Predictions are logits ``[N, C]`` (the argmax is the predicted
class), class indices ``[N]``, or for regression tasks values ``[N]`` or ``[N, 1]``. F1 is binary with
class 1 as the positive class (MRPC's "equivalent", QQP's "duplicate"). A correlation that is undefined
(constant predictions or labels) is NaN.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from ..errors import DataError

if TYPE_CHECKING:
    from .tasks import Task


def _pearson(labels: np.ndarray, predictions: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(stats.pearsonr(labels, predictions).statistic)


def _spearman(labels: np.ndarray, predictions: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(stats.spearmanr(labels, predictions).statistic)


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": lambda y, p: float(accuracy_score(y, p)),
    "f1": lambda y, p: float(f1_score(y, p, average="binary", pos_label=1, zero_division=0.0)),
    "matthews_corrcoef": lambda y, p: float(matthews_corrcoef(y, p)),
    "pearson": _pearson,
    "spearmanr": _spearman,
}


def compute_metrics(task: Task, predictions: Any, labels: Any) -> dict[str, float]:
    """Every metric of the task, by name, for model outputs against gold labels."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if task.is_regression:
        if predictions.ndim == 2 and predictions.shape[1] == 1:
            predictions = predictions[:, 0]
        if predictions.ndim != 1:
            raise DataError(f"{task.name}: regression predictions must be [N] or [N, 1], got shape {predictions.shape}")
        labels = labels.astype(np.float64)
    elif predictions.ndim == 2:
        if predictions.shape[1] != task.num_labels:
            raise DataError(f"{task.name}: logits have {predictions.shape[1]} classes, the task has {task.num_labels}")
        predictions = predictions.argmax(axis=1)
    elif predictions.ndim != 1:
        raise DataError(f"{task.name}: predictions must be logits [N, C] or classes [N], got shape {predictions.shape}")
    if labels.shape != predictions.shape:
        raise DataError(f"{task.name}: {len(predictions)} predictions for {len(labels)} labels")
    return {name: METRICS[name](labels, predictions) for name in task.metrics}


def main_metric(task: Task) -> str:
    """The name of the metric that ranks models on this task."""
    return task.main_metric
