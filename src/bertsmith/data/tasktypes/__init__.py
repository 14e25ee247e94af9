"""The task-type registry: each ``Task`` gets its behaviour from the type its ``type`` names.

Built in are ``classification``, ``regression`` and ``extractive_qa`` (SQuAD). A new type is a
``TaskType`` subclass in a module of its own and one ``register_task_type`` call (below for a built-in
type); a task YAML then names it in ``type``.
"""

from __future__ import annotations

from ...errors import DataError
from .base import Metric, TaskType
from .classification import CLASSIFICATION, Classification
from .extractive_qa import EXTRACTIVE_QA, ExtractiveQA
from .regression import REGRESSION, Regression

TASK_TYPES: dict[str, TaskType] = {}


def register_task_type(task_type: TaskType) -> TaskType:
    """Make ``task_type`` available by its name (a later registration of the name replaces it)."""
    TASK_TYPES[task_type.name] = task_type
    return task_type


def get_task_type(name: str) -> TaskType:
    """The registered task type called ``name``."""
    try:
        return TASK_TYPES[name]
    except KeyError:
        raise DataError(f"unknown task type {name!r} (known: {', '.join(TASK_TYPES)})") from None


def task_type_of_head(num_outputs: int) -> TaskType:
    """The type of an exported model's head, whose config does not name one: regression for a head of
    one output, classification for any other."""
    return REGRESSION if num_outputs == 1 else CLASSIFICATION


def known_metrics() -> list[str]:
    """Every metric of a registered task type, each once."""
    return list(dict.fromkeys(name for task_type in TASK_TYPES.values() for name in task_type.metrics))


register_task_type(CLASSIFICATION)
register_task_type(REGRESSION)
register_task_type(EXTRACTIVE_QA)

__all__ = [
    "CLASSIFICATION",
    "EXTRACTIVE_QA",
    "REGRESSION",
    "TASK_TYPES",
    "Classification",
    "ExtractiveQA",
    "Metric",
    "Regression",
    "TaskType",
    "get_task_type",
    "known_metrics",
    "register_task_type",
    "task_type_of_head",
]
