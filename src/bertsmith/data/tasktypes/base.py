"""What a task type owns: everything that differs between, say, classification and regression.

A ``TaskType`` says what a label is and how a file's label cell is read, how many outputs the task
head has, the losses on gold labels and against a teacher's logits, which metrics apply, the level a
constant predictor reaches, how logits become predictions, and the class names an exported model
carries. A type whose data is not one row per example (extractive QA: a JSON file of articles, a
question split into several windows of its context) also reads its splits (``read_split``), tokenizes
them (``encode``), builds its model (``build_model``) and scores a split from its logits
(``evaluate``); the defaults are those of text classification. The trainer, the evaluators and the
pipeline only call these methods, so a new type is one module and a ``register_task_type`` call
(``tasktypes/__init__.py``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from ...errors import DataError

if TYPE_CHECKING:
    from ..split import Split
    from ..tasks import Task
    from ..tokenize import Encoded

Metric = Callable[[np.ndarray, np.ndarray], float]


class TaskType(ABC):
    """One kind of task; instances are stateless and shared through the registry."""

    name: ClassVar[str]  # as a task YAML's ``type`` names it
    named_labels: ClassVar[bool]  # whether the task lists label names (``Task.labels``)
    label_dtype: ClassVar[type]  # numpy dtype of the labels in batches
    metrics: ClassVar[Mapping[str, Metric]]  # the metrics that apply, by name
    default_metrics: ClassVar[tuple[str, ...]]  # a task's metrics when its YAML names none
    default_max_length: ClassVar[int] = 128  # tokens per example when the user sets none
    # whether perturbed copies of an example keep its label (``--augment``, Agora's new points): not where a
    # label points at tokens that a perturbation may replace
    generated_data: ClassVar[bool] = True
    # A type that reads its own files (``read_split``) fixes its tasks' text columns and label column
    # (a task YAML then names none); None: a task YAML names them.
    own_columns: ClassVar[tuple[tuple[str, ...], str] | None] = None

    def read_split(self, task: Task, split: str, data_dir: str | None) -> Split | None:
        """The split read in this type's own way, or None for the shared readers (rows of CSV, TSV,
        JSONL, GLUE folders, the hub)."""
        return None

    def encode(self, task: Task, split: Split, tokenizer, max_length: int) -> dict[str, np.ndarray] | None:
        """The tokenized split as arrays, or None for the shared tokenization (one sequence per example,
        truncated to ``max_length``). Arrays: ``input_ids``, ``token_type_ids``, ``offsets`` (sequence
        boundaries), ``labels`` (one row per sequence) and any others the type's ``evaluate`` reads
        (kept in ``Encoded.extra``)."""
        return None

    def encode_key(self, task: Task) -> str:
        """What else, beyond the split, tokenizer and ``max_length``, decides ``encode``'s result (a
        cache key part)."""
        return ""

    def build_model(self, spec, num_outputs: int) -> torch.nn.Module:
        """A fresh model of ``spec`` with this type's head of ``num_outputs`` (``num_outputs(task)``):
        ``model(ids, mask, types) → (logits, output)``."""
        from ...modeling import BertsmithForSequenceClassification

        return BertsmithForSequenceClassification(spec, num_labels=num_outputs)

    def is_task_model(self, model: torch.nn.Module) -> bool:
        """Whether ``model`` (an imported checkpoint) has this type's head, so it can serve as a teacher."""
        from ...modeling import BertsmithForSequenceClassification

        return isinstance(model, BertsmithForSequenceClassification)

    def evaluate(
        self, task: Task, logits: np.ndarray, encoded: Encoded, *, dev: Mapping[str, float] | None = None
    ) -> dict[str, float]:
        """Every metric of ``task`` for a model's logits on a tokenized split (``predict``'s order).
        ``dev``: the same model's dev metrics, for a type that tunes a setting on dev and applies it to the
        other splits (extractive QA's null threshold)."""
        return self.scores(task, logits, encoded.labels)

    def scores(self, task: Task, predictions, labels) -> dict[str, float]:
        """Every metric of ``task`` for model outputs (``metric_inputs``' input) against gold labels."""
        predictions, labels = self.metric_inputs(task, np.asarray(predictions), np.asarray(labels))
        if labels.shape != predictions.shape:
            raise DataError(f"{task.name}: {len(predictions)} predictions for {len(labels)} labels")
        return {name: self.metrics[name](labels, predictions) for name in task.metrics}

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

    def predict_texts(
        self, model: torch.nn.Module, tokenizer, texts: list[str], pairs: list[str] | None, *, max_length: int, names
    ) -> list[dict]:
        """``bertsmith predict``'s result per text (with its pair): the texts tokenized, truncated to
        ``max_length``, run through ``model`` and turned into results by ``outputs``."""
        encoded = tokenizer(texts, pairs, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        logits, _ = model(encoded["input_ids"], encoded["attention_mask"], encoded.get("token_type_ids"))
        return self.outputs(logits.float(), names)

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
