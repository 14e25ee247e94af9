"""Task data: the task registry, task types (``tasktypes``), loading splits, metrics, and tokenization with an
on-disk cache."""

from .sources import Split, load_split
from .tasks import TASKS, HubSource, Task, compute_metrics, get_task, load_task_file, main_metric, resolve_task
from .tokenize import Encoded, collate, default_cache_dir, encode_split, length_grouped_batches

__all__ = [
    "TASKS",
    "Encoded",
    "HubSource",
    "Split",
    "Task",
    "collate",
    "compute_metrics",
    "default_cache_dir",
    "encode_split",
    "get_task",
    "length_grouped_batches",
    "load_split",
    "load_task_file",
    "main_metric",
    "resolve_task",
]
