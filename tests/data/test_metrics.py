"""Metrics against values computed by hand and by scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from bertsmith.data import compute_metrics, get_task, main_metric
from bertsmith.errors import DataError

LABELS = [1, 1, 0, 0, 1]
PREDICTED = [1, 0, 0, 1, 1]  # TP 2, FN 1, TN 1, FP 1


def logits(classes: list[int], num_labels: int = 2) -> np.ndarray:
    return np.eye(num_labels)[classes] * 3.0 - 1.0


def test_classification_metrics_by_hand():
    assert compute_metrics(get_task("mrpc"), logits(PREDICTED), LABELS) == pytest.approx(
        {"f1": 2 / 3, "accuracy": 3 / 5}
    )
    mcc = (2 * 1 - 1 * 1) / math.sqrt(3 * 3 * 2 * 2)
    assert compute_metrics(get_task("cola"), logits(PREDICTED), LABELS) == pytest.approx({"matthews_corrcoef": mcc})
    assert compute_metrics(get_task("cola"), PREDICTED, LABELS)["matthews_corrcoef"] == pytest.approx(mcc)  # classes
    assert compute_metrics(get_task("mnli"), logits([0, 2, 1], 3), [0, 2, 2]) == pytest.approx({"accuracy": 2 / 3})
    assert compute_metrics(get_task("qqp"), logits([0, 0]), [1, 0])["f1"] == 0.0  # no positive prediction


def test_regression_metrics():
    task = get_task("stsb")
    assert compute_metrics(task, [1.0, 3.0, 2.0], [1.0, 2.0, 3.0])["spearmanr"] == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    labels, predictions = rng.uniform(0, 5, 50), rng.normal(size=(50, 1))
    got = compute_metrics(task, predictions, labels)
    assert got["pearson"] == pytest.approx(stats.pearsonr(labels, predictions[:, 0]).statistic)
    assert got["spearmanr"] == pytest.approx(stats.spearmanr(labels, predictions[:, 0]).statistic)
    assert math.isnan(compute_metrics(task, [2.0, 2.0, 2.0], [1.0, 2.0, 3.0])["pearson"])


def test_main_metric_and_shape_errors():
    assert main_metric(get_task("mrpc")) == "f1" and main_metric(get_task("stsb")) == "pearson"
    with pytest.raises(DataError, match="logits have 3 classes, the task has 2"):
        compute_metrics(get_task("sst2"), np.zeros((2, 3)), [0, 1])
    with pytest.raises(DataError, match="3 predictions for 2 labels"):
        compute_metrics(get_task("sst2"), np.zeros((3, 2)), [0, 1])
    with pytest.raises(DataError, match=r"regression predictions must be \[N\] or \[N, 1\]"):
        compute_metrics(get_task("stsb"), np.zeros((2, 2)), [0.0, 1.0])
