"""A fine-tuned task teacher and its task, loaded once and passed to every stage that needs them.

``TaskContext.load`` is the one place that reads a teacher checkpoint for a task: its weights (checked
against the task's labels), its tokenizer (checked against its vocabulary and the max length) and the
task's tokenized splits. A search, a supernet, each distillation and the export of one run then share
it instead of reading the same files again. The loaded teacher is never changed: a stage that reorders
or trains a teacher takes its own copy (``teacher()``), as it would have had from its own load.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..arch import ArchSpec
from ..data import Task, resolve_task
from ..files import files_digest
from .task import TaskData, check_max_length, load_task_data, load_tokenizer
from .teacher import load_teacher


@dataclass
class TaskContext:
    """A teacher in ``directory`` fine-tuned for ``task``, with its tokenizer and the task's data."""

    directory: Path
    task: Task
    source: str  # the task as it was named: a built-in name or a task file (what ``bertsmith search`` takes)
    model: torch.nn.Module  # as loaded; read it, never change it (``teacher()`` copies)
    tokenizer: object
    max_length: int
    data_dir: Path | None = None
    cache_dir: Path | None = None
    _data: TaskData | None = field(default=None, repr=False)
    _key: str | None = field(default=None, repr=False)

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike,
        task: Task | str | os.PathLike,
        *,
        max_length: int | None = None,
        data_dir: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
        option: str = "--max-length",
    ) -> "TaskContext":
        """Read the teacher and its tokenizer (the task's data is read on first use); ``option`` names the
        user's setting of ``max_length`` (None: the task type's default) in the message that refuses one beyond
        the teacher's positions."""
        directory = Path(directory)
        source = task.name if isinstance(task, Task) else str(task)
        task = task if isinstance(task, Task) else resolve_task(task)
        max_length = task.task_type.default_max_length if max_length is None else max_length
        model = load_teacher(directory, task)
        tokenizer = load_tokenizer(directory, model.encoder.spec)
        check_max_length(
            max_length, model.encoder.spec, str(directory), f"max_positions in {directory / 'config.json'}", option
        )
        return cls(
            directory,
            task,
            source,
            model,
            tokenizer,
            max_length,
            Path(data_dir) if data_dir is not None else None,
            Path(cache_dir) if cache_dir is not None else None,
        )

    @property
    def spec(self) -> ArchSpec:
        return self.model.encoder.spec

    @property
    def key(self) -> str:
        """The digest of the teacher's files (what results made from it record)."""
        if self._key is None:
            self._key = files_digest(self.directory)
        return self._key

    def teacher(self) -> torch.nn.Module:
        """A copy of the teacher that the caller may reorder or train."""
        return copy.deepcopy(self.model)

    def data(self, splits: tuple[str, ...] | None = None) -> TaskData:
        """The task's splits (train, dev, and test where the task has one; or ``splits``), tokenized once.
        Each call returns its own ``TaskData``, so a caller may replace a split (e.g. augment train)."""
        if self._data is None:
            self._data = load_task_data(
                self.task, self.tokenizer, data_dir=self.data_dir, max_length=self.max_length, cache_dir=self.cache_dir
            )
        names = tuple(self._data.splits) if splits is None else splits
        return replace(
            self._data,
            splits={name: self._data.splits[name] for name in names},
            hashes={name: self._data.hashes[name] for name in names},
        )

    def serves(
        self,
        directory: str | os.PathLike,
        task: Task,
        *,
        max_length: int,
        data_dir: str | os.PathLike | None,
        cache_dir: str | os.PathLike | None,
    ) -> bool:
        """Whether this context is what loading ``directory`` for ``task`` with these settings would give."""
        same = (
            Path(directory).resolve() == self.directory.resolve()
            and task.name == self.task.name
            and max_length == self.max_length
        )
        return same and _same_path(data_dir, self.data_dir) and _same_path(cache_dir, self.cache_dir)


def _same_path(a: str | os.PathLike | None, b: str | os.PathLike | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and Path(a).resolve() == Path(b).resolve())


def context_for(
    context: TaskContext | None,
    directory: str | os.PathLike,
    task: Task,
    *,
    max_length: int,
    data_dir: str | os.PathLike | None,
    cache_dir: str | os.PathLike | None,
) -> TaskContext:
    """``context`` when it is what these settings would load, a fresh load when there is none. A context
    of another teacher, task or data is a caller's mistake (ValueError), never silently used."""
    if context is None:
        return TaskContext.load(directory, task, max_length=max_length, data_dir=data_dir, cache_dir=cache_dir)
    if not context.serves(directory, task, max_length=max_length, data_dir=data_dir, cache_dir=cache_dir):
        raise ValueError(
            f"the context holds the teacher in {context.directory} for {context.task.name} (max length "
            f"{context.max_length}), not {directory} for {task.name} (max length {max_length})"
        )
    return context
