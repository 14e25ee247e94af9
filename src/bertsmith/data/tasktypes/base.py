"""What a task type owns: everything that differs between, say, classification and regression.

A ``TaskType`` says what a label is and how a file's label cell is read, how many outputs the task
head has, the losses on gold labels and against a teacher's logits, which metrics apply, the level a
constant predictor reaches, how logits become predictions, and the class names an exported model
carries. The trainer, the evaluators and the pipeline only call these methods, so a new type is one
module and a ``register_task_type`` call (``tasktypes/__init__.py``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

if TYPE_CHECKING:
    from ..tasks import Task

Metric = Callable[[np.ndarray, np.ndarray], float]


class TaskType(ABC):
    """One kind of task; instances are stateless and shared through the registry."""

    name: ClassVar[str]  # as a task YAML's ``type`` names it
    named_labels: ClassVar[bool]  # whether the task lists label names (``Task.labels``)
    label_dtype: ClassVar[type]  # numpy dtype of the labels in batches
    metrics: ClassVar[Mapping[str, Metric]]  # the metrics that apply, by name
    default_metrics: ClassVar[tuple[str, ...]]  # a task's metrics when its YAML names none

    @abstractmethod
    def num_outputs(self, task: Task) -> int:
        """Outputs of the task head."""

    @abstractmethod
    def parse_label(self, task: Task, value: str, where: str) -> int | float:
        """A file's label cell as the number the model trains on; DataError naming ``where`` if bad."""

    @abstractmethod
    def metric_inputs(self, task: Task, predictions: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Model outputs (logits or predictions already made) and gold labels as the metrics compare them."""

    @abstractmethod
    def predictions(self, logits: np.ndarray) -> np.ndarray:
        """Predicted labels from logits ``[N, outputs]``, comparable with gold labels."""

    @abstractmethod
    def mistakes(self, logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Indices of the examples the logits get wrong (agora generates new data around them)."""

    @abstractmethod
    def label_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss on gold labels (fp32)."""

    @abstractmethod
    def teacher_loss(
        self, student: torch.Tensor, teacher: torch.Tensor, *, logit_loss: str, temperature: float
    ) -> torch.Tensor:
        """The loss against the teacher's logits; ``logit_loss`` and ``temperature`` as LossConfig has them."""

    @abstractmethod
    def constant_level(self, task: Task, metric: str, labels: np.ndarray) -> float:
        """The best value of ``metric`` on ``labels`` over the predictors that answer the same for every input."""

    @abstractmethod
    def outputs(self, logits: torch.Tensor, names: list[str] | None) -> list[dict]:
        """``bertsmith predict``'s result per row of logits; ``names``: the exported model's class names."""

    @abstractmethod
    def output_fields(self, names: list[str] | None) -> list[str]:
        """The CSV columns of ``outputs``' results, in order."""

    @abstractmethod
    def csv_row(self, result: dict, names: list[str] | None) -> list:
        """One of ``outputs``' results as the CSV row under ``output_fields``."""

    def describe_labels(self, task: Task) -> str:
        """The labels column of ``bertsmith task list``."""
        return ", ".join(task.labels) if self.named_labels else self.name

    @abstractmethod
    def label_summary(self, task: Task, labels: list) -> str:
        """The labels column of ``bertsmith task show`` for one split's labels."""

    def export_labels(self, task: Task) -> tuple[str, ...] | None:
        """The class names an exported model's config carries (id2label), None for none."""
        return task.labels if self.named_labels else None
