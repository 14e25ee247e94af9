"""The quality gate: constant-predictor levels, the verdict on a chosen model, and the teacher's
fine-tuning schedule for small tasks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bertsmith.data import get_task
from bertsmith.distill.teacher import fitted_schedule
from bertsmith.distill.trainer import TrainConfig
from bertsmith.quality import at_constant_level, constant_levels, judge


def test_constant_levels_are_the_best_constant_answer_on_the_labels():
    labels = np.array([1] * 7 + [0] * 3)
    levels = constant_levels(replace(get_task("sst2"), metrics=("accuracy", "f1", "matthews_corrcoef")), labels)
    assert levels["accuracy"] == pytest.approx(0.7)  # the majority rate
    assert levels["f1"] == pytest.approx(2 * 0.7 / 1.7)  # all positive: precision 0.7, recall 1
    assert levels["matthews_corrcoef"] == 0.0
    three = constant_levels(get_task("mnli"), np.array([2, 2, 1, 0, 2]))
    assert get_task("mnli").metrics == ("accuracy",)
    assert three["accuracy"] == pytest.approx(0.6)
    assert constant_levels(get_task("stsb"), np.array([0.1, 2.0, 4.5])) == {"pearson": 0.0, "spearmanr": 0.0}


def test_at_constant_level_counts_points_above_the_level_and_nan_as_constant():
    assert at_constant_level(0.595, 0.59, margin_points=1.0)
    assert at_constant_level(0.60, 0.59, margin_points=1.0)
    assert not at_constant_level(0.61, 0.59, margin_points=1.0)
    assert at_constant_level(float("nan"), 0.0, margin_points=1.0)
    assert not at_constant_level(0.055, 0.0, margin_points=1.0)


def entry(name, kind, dev, test=None, source=None, violations=()):
    metrics = {"dev": {"accuracy": dev}} | ({"test": {"accuracy": test}} if test is not None else {})
    return {"name": name, "kind": kind, "metrics": metrics, "source": source, "violations": list(violations)}


TEACHER = {"metrics": {"dev": {"accuracy": 0.82}}}
CONSTANT = {"dev": {"accuracy": 0.59}}


def verdict(chosen, entries, max_drop=5.0):
    return judge(chosen, entries, TEACHER, CONSTANT, "accuracy", max_drop=max_drop, margin=1.0)


def test_a_good_search_model_passes_and_its_lead_over_the_baseline_is_stated():
    found, uniform = entry("f", "finalist", 0.80, 0.81), entry("u", "baseline", 0.78, 0.79, source="uniform")
    v = verdict(found, [found, uniform])
    assert v.passed and v.reasons == []
    assert v.baseline == "the search's model beat the uniform baseline by 2.00 points on dev (+2.00 on test)"


def test_a_baseline_that_wins_is_chosen_and_the_search_is_said_to_have_lost():
    found, uniform = entry("f", "finalist", 0.77, 0.78), entry("u", "baseline", 0.80, 0.80, source="uniform")
    v = verdict(uniform, [found, uniform])
    assert v.passed  # the user gets the better model
    assert v.baseline.startswith("the search did not beat the uniform baseline") and "3.00 points on dev" in v.baseline


def test_the_gate_fails_at_a_constant_level_too_far_behind_the_teacher_or_behind_an_ineligible_baseline():
    constant = entry("f", "finalist", 0.595)
    v = verdict(constant, [constant])
    assert not v.passed and "level of a constant predictor (59.00" in v.reasons[0]
    assert "22.50 points behind the teacher" in v.reasons[1] and "quality.max_drop = 5" in v.reasons[1]
    found = entry("f", "finalist", 0.80)
    assert verdict(found, [found], max_drop=1.0).reasons == [
        "dev accuracy is 2.00 points behind the teacher's (more than quality.max_drop = 1)"
    ]
    slow = entry("u", "baseline", 0.81, source="uniform", violations=["latency 9.00 ms > 5 ms"])
    v = verdict(found, [found, slow])
    assert v.reasons == ["dev accuracy is 1.00 points behind the uniform baseline"]
    assert "not eligible (latency 9.00 ms > 5 ms)" in v.baseline


@pytest.mark.parametrize(
    "train_size, epochs, expected",
    [
        (10_248, 1.0, 1.0),  # 321 steps of 32: already past 300, unchanged
        (5_749, 1.0, 2.0),  # 180 steps an epoch: two epochs
        (3_668, 1.0, 3.0),  # 115 steps an epoch: three
        (3_668, 4.0, 4.0),  # more epochs than needed: unchanged
    ],
)
def test_a_small_task_s_teacher_gets_whole_extra_epochs_with_early_stopping(train_size, epochs, expected):
    config = fitted_schedule(TrainConfig(epochs=epochs, batch_size=32), train_size, min_steps=300, patience=1)
    assert config.epochs == expected
    assert config.patience == (1 if expected != epochs else None)
    assert fitted_schedule(TrainConfig(steps=50), 100, min_steps=300, patience=1).steps == 50  # steps win
    assert fitted_schedule(TrainConfig(epochs=1), 100, min_steps=0, patience=1).epochs == 1  # off


def test_a_tie_with_the_baseline_is_called_a_tie():
    found, uniform = entry("f", "finalist", 0.80, 0.81), entry("u", "baseline", 0.80, 0.79, source="uniform")
    v = verdict(found, [found, uniform])
    assert v.passed and v.reasons == []
    assert v.baseline == "the search's model tied the uniform baseline on dev (+2.00 on test)"
