"""Task types: the built-in ones and a new one registered from a test module, which a task YAML names
and which a tiny teacher and student train and are scored with, through the ordinary jobs."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from bertsmith.data import compute_metrics, load_split, load_task_file
from bertsmith.data.tasktypes import CLASSIFICATION, REGRESSION, TASK_TYPES, get_task_type, task_type_of_head
from bertsmith.distill.objectives import LossConfig
from bertsmith.distill.student import distill_on_task
from bertsmith.distill.teacher import finetune_teacher
from bertsmith.distill.trainer import TrainConfig
from bertsmith.errors import DataError
from bertsmith.hf import import_checkpoint
from bertsmith.quality import constant_levels

from tests.tasks import FILLER, tiny_spec

from .toy_task_type import Ordinal

WORDS = (["awful", "dull", "boring"], ["fine", "okay", "decent"], ["superb", "lovely", "great"])  # 1, 2, 3 stars


def test_the_built_in_types_are_registered():
    assert get_task_type("classification") is CLASSIFICATION and get_task_type("regression") is REGRESSION
    assert task_type_of_head(1) is REGRESSION and task_type_of_head(3) is CLASSIFICATION
    with pytest.raises(DataError, match="unknown task type 'ranking'"):
        get_task_type("ranking")


@pytest.fixture
def ordinal(monkeypatch) -> Ordinal:
    task_type = Ordinal()
    monkeypatch.setitem(TASK_TYPES, task_type.name, task_type)
    return task_type


def write_stars_task(folder: Path) -> Path:
    """A 1-3 star review task of type ordinal (CSV files + task YAML)."""
    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in {"train": 192, "dev": 48, "test": 48}.items():
        lines = ["text,stars"]
        for _ in range(n):
            stars = rng.randint(1, 3)
            words = rng.sample(FILLER, 4) + [rng.choice(WORDS[stars - 1])]
            rng.shuffle(words)
            lines.append(f"{' '.join(words)},{stars}")
        (folder / f"{split}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    path = folder / "task.yaml"
    path.write_text(
        "name: stars\nfiles: {train: train.csv, dev: dev.csv, test: test.csv}\n"
        "text_columns: [text]\nlabel_column: stars\ntype: ordinal\n",
        encoding="utf-8",
    )
    return path


def test_a_registered_type_reads_scores_and_distils_its_task(ordinal, tmp_path, base_dir):
    task = load_task_file(write_stars_task(tmp_path / "stars"))
    assert task.task_type is ordinal and task.labels == ("1", "2", "3") and task.num_labels == 3
    assert task.metrics == ("accuracy", "within_one") and task.main_metric == "accuracy"
    dev = load_split(task, "dev")
    assert set(dev.labels) == {0, 1, 2}
    assert compute_metrics(task, np.array([2, 0]), np.array([0, 0])) == {"accuracy": 0.5, "within_one": 0.5}
    assert constant_levels(task, np.array([0, 1, 1, 2]))["within_one"] == 1.0  # "2 stars" is never two away

    cache = tmp_path / "cache"
    teacher = finetune_teacher(
        base_dir,
        task,
        config=TrainConfig(steps=36, lr=3e-3, batch_size=16, eval_every=12),
        max_length=16,
        cache_dir=cache,
        progress=False,
    )
    assert ordinal.label_losses > 0 and set(teacher.metrics["dev"]) == {"within_one", "accuracy"}
    before = ordinal.label_losses
    result = distill_on_task(
        tiny_spec(layers=2, hidden=48),
        teacher.directory,
        task,
        losses=LossConfig.from_terms("labels,logits"),
        config=TrainConfig(steps=36, lr=3e-3, batch_size=16, eval_every=12),
        run_dir=tmp_path / "run",
        max_length=16,
        cache_dir=cache,
        progress=False,
    )
    assert ordinal.label_losses > before and set(result.metrics["dev"]) == {"within_one", "accuracy"}
    assert result.metrics["dev"]["accuracy"] > 0.5  # three classes: a constant gets about a third
    imported = import_checkpoint(result.model_dir)
    assert imported.num_labels == 3 and imported.labels == ("1", "2", "3")
