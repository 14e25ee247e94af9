"""The distillation job: a student of a given shape trained on a task from its task teacher, and
written as a Hugging Face directory with a summary of how it was made.

Used by ``bertsmith distill`` and by ``bertsmith run`` for every finalist and baseline.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import distributed
from ..arch import ArchSpec
from ..cost import encoder_params, params
from ..data import Task
from ..data.augment import perturbed_copies
from ..errors import ConfigError
from ..files import atomic_write_text, writable_dir
from ..hf.checkpoint import import_checkpoint
from ..hf.export import export_pretrained
from ..modeling.elastic import slice_weights
from .context import TaskContext, context_for
from .objectives import LossConfig, TaskObjective
from .task import (
    TaskData,
    check_max_length,
    check_vocab,
    final_metrics,
    load_encoder,
    load_task_data,
    load_tokenizer,
    reorder_by_importance,
    task_model,
    train_on_task,
)
from .trainer import TrainConfig


def start_student(
    spec: ArchSpec | None,
    data: TaskData,
    teacher: torch.nn.Module | None,
    *,
    init: str | os.PathLike | None,
    init_from_teacher: bool,
    seed: int,
):
    """The student before training: fresh weights of ``spec`` (seeded), the encoder of the checkpoint
    ``init`` (its spec replaces ``spec``), or the teacher's weights sliced to ``spec`` after ordering
    its units by importance on train examples (``init_from_teacher``)."""
    torch.manual_seed(seed)
    if init is not None:
        start = import_checkpoint(init, head="base")
        spec = start.spec
    check_vocab(data.tokenizer, spec, init or "the student spec")
    check_max_length(
        data.max_length,
        spec,
        str(init) if init else "the student",
        f"max_positions in {Path(init) / 'config.json'}" if init else "embeddings.max_positions of its spec",
    )
    student = task_model(data.task, spec)
    if init is not None:
        load_encoder(student, start.model)
    if init_from_teacher:
        reorder_by_importance(teacher, data, seed=seed)
        slice_weights(teacher, teacher.encoder.spec, student, student.encoder.spec)
    return student


@dataclass
class DistillResult:
    run_dir: Path
    model_dir: Path
    metrics: dict[str, dict[str, float]]
    best_step: int | None
    steps: int


def distill_on_task(
    spec: ArchSpec,
    teacher_dir: str | os.PathLike,
    task: Task,
    *,
    losses: LossConfig,
    config: TrainConfig,
    run_dir: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    init: str | os.PathLike | None = None,
    init_from_teacher: bool = False,
    augment: int = 0,
    augment_rate: float = 0.15,
    max_length: int = 128,
    resume: bool = False,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    context: TaskContext | None = None,
) -> DistillResult:
    """Train a student of shape ``spec`` on ``task`` from a fine-tuned teacher (or from the labels
    only, when ``losses`` needs no teacher; the teacher directory still gives the tokenizer).
    ``init``: a checkpoint directory whose encoder weights start the student (its spec is used).
    ``init_from_teacher``: start from the teacher's weights sliced to ``spec`` (``modeling.elastic``:
    evenly spaced layers, then the most important heads, FFN neurons and hidden channels by their
    Taylor scores on ``task.IMPORTANCE_EXAMPLES`` train examples, and the leading head dims).
    ``augment``: train on the train split plus this many perturbed copies of it (``data.augment``).
    ``context``: the teacher, tokenizer and data already loaded for these settings (``bertsmith.context``).
    Writes ``RUN_DIR/model`` (Hugging Face directory of the best student) and ``result.json``."""
    if init is not None and init_from_teacher:
        raise ConfigError("--init and --init-from-teacher: choose one starting point for the student")
    if augment and not task.task_type.generated_data:
        raise ConfigError(f"--augment: perturbed copies do not keep the labels of a {task.type} task")
    run_dir = Path(run_dir)
    writable_dir(run_dir)
    if context is None and not (losses.needs_teacher or init_from_teacher):  # labels only: any checkpoint
        tokenizer = load_tokenizer(teacher_dir, import_checkpoint(teacher_dir).spec, max_length)  # gives the tokens
        data, teacher = (
            load_task_data(task, tokenizer, data_dir=data_dir, max_length=max_length, cache_dir=cache_dir),
            None,
        )
    else:
        context = context_for(context, teacher_dir, task, max_length=max_length, data_dir=data_dir, cache_dir=cache_dir)
        tokenizer, data = context.tokenizer, context.data()
        teacher = context.teacher() if losses.needs_teacher or init_from_teacher else None

    student = start_student(spec, data, teacher, init=init, init_from_teacher=init_from_teacher, seed=config.seed)
    spec = student.encoder.spec
    data.splits["train"] = perturbed_copies(
        data.splits["train"], augment, rate=augment_rate, special_ids=set(tokenizer.all_special_ids), seed=config.seed
    )
    objective = TaskObjective(student, teacher if losses.needs_teacher else None, losses, task_type=task.task_type)
    fingerprint = {
        "spec": spec.model_dump(mode="json"),
        "teacher": str(Path(teacher_dir).resolve()),
        "task": task.name,
        "losses": losses.model_dump(mode="json"),
        "init": "teacher-slice" if init_from_teacher else (str(init) if init else None),
        "augment": {"copies": augment, "rate": augment_rate} if augment else None,
    }
    result = train_on_task(
        objective,
        data,
        config=config,
        run_dir=run_dir,
        resume=resume,
        fingerprint=fingerprint,
        progress=progress,
        description=f"distil {task.name}",
    )
    metrics = final_metrics(student, data, result)
    model_dir = run_dir / "model"
    if distributed.is_main():
        export_pretrained(student, model_dir, tokenizer_dir=teacher_dir, labels=task.task_type.export_labels(task))
        summary = fingerprint | {
            "train": config.model_dump(),
            "data": data.hashes,
            "max_length": max_length,
            "steps": result.steps,
            "best_step": result.best_step,
            "stopped_early": result.stopped_early,
            "metrics": metrics,
            "params": params(spec),
            "non_embedding_params": encoder_params(spec),
        }
        atomic_write_text(run_dir / "result.json", json.dumps(summary, indent=1))
    distributed.barrier()
    return DistillResult(run_dir, model_dir, metrics, result.best_step, result.steps)
