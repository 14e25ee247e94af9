"""Task metrics (GLUE's): accuracy, binary F1, Matthews correlation, Pearson and Spearman correlation,
each a function of the gold labels and the predicted classes (or values, for regression).

Computed with scikit-learn and scipy. F1 is binary with class 1 as the positive class (MRPC's
"equivalent", QQP's "duplicate"). A correlation that is undefined (constant predictions or labels) is
NaN. ``tasks.compute_metrics`` scores a task's model outputs with its metrics.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef


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
