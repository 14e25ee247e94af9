"""Evaluators: how a search scores an architecture on the task. One interface, several costs.

- ``slice``: the architecture's weights are cut from a trained supernet and evaluated as they are
  (no training; seconds).
- ``distill``: a short (``steps``) task distillation from the teacher, starting from the supernet
  slice, the sliced teacher, or random weights; the surrogate of Bort and EfficientBERT. With
  ``steps=None`` it is a full distillation (the ``TrainConfig``'s epochs).

Every evaluator reports the task's metrics on the evaluation split (``dev`` by default) and names
the metric that the search maximises.
"""

from __future__ import annotations

import shutil
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import torch
from torch import nn

from ..arch import ArchSpec
from ..device import compute_device
from ..distill.checkpoint import BEST, CHECKPOINTS
from ..distill.objectives import LossConfig, TaskObjective
from ..distill.task import TaskData, evaluate, reorder_by_importance, task_model, train_on_task
from ..distill.trainer import TrainConfig
from ..errors import ConfigError
from ..modeling.elastic import slice_weights
from .supernet import Supernet, SupernetJob

Init = Literal["supernet", "teacher", "scratch", "warm"]


@dataclass
class Evaluation:
    """``metrics``: task metrics on the evaluation split; ``seconds``: wall time of the evaluation;
    ``details``: anything worth keeping with the trial (steps trained, starting point)."""

    metrics: dict[str, float]
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)


class Evaluator(ABC):
    """Scores architectures. ``metric``: the key of ``Evaluation.metrics`` that is maximised."""

    name: str
    metric: str

    @abstractmethod
    def evaluate(self, spec: ArchSpec, workdir: Path) -> Evaluation:
        """Score ``spec``; ``workdir`` is this trial's own directory for anything it writes."""

    @abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """What defines the scores (kind, teacher, task, steps ...): a study refuses to mix evaluators.
        Known before ``prepare``."""

    def prepare(self) -> None:
        """Expensive set-up (training a supernet), run once the study has accepted this evaluator."""


class SliceEvaluator(Evaluator):
    """The architecture cut from a trained supernet, evaluated without training."""

    name = "slice"

    def __init__(self, supernet: SupernetJob, data: TaskData, *, split: str = "dev"):
        _check_split(data, split)
        self.job, self.data, self.split = supernet, data, split
        self.metric = data.task.main_metric
        self.supernet: Supernet | None = None

    def prepare(self) -> None:
        self.supernet = self.job.get().eval().to(compute_device())

    def evaluate(self, spec: ArchSpec, workdir: Path) -> Evaluation:
        if self.supernet is None:
            self.prepare()
        start = time.perf_counter()
        metrics = evaluate(self.supernet.extract(spec), self.data, self.split)
        return Evaluation(metrics, time.perf_counter() - start)

    def fingerprint(self) -> dict[str, Any]:
        return {
            "kind": self.name,
            "supernet": self.job.key,
            "task": self.data.task.name,
            "split": self.split,
            "data": self.data.hashes.get(self.split),
        }


class DistillEvaluator(Evaluator):
    """Task distillation of the architecture from the teacher, then evaluation. ``steps``: a short
    run of that many optimizer steps (evaluated at its end), or None for a full run with the
    ``config``'s epochs (the best dev checkpoint is kept). ``init``: the student starts from its
    supernet slice, from the importance-ordered teacher sliced to its shape, from random weights, or
    (``warm``) from ``warm_start(spec)``, which the strategy sets (the progressive search's warmed-up
    FFN supernet)."""

    name = "distill"

    def __init__(
        self,
        teacher: nn.Module,
        data: TaskData,
        *,
        teacher_key: str,
        steps: int | None,
        init: Init = "scratch",
        supernet: SupernetJob | None = None,
        losses: LossConfig = LossConfig(),
        config: TrainConfig = TrainConfig(),
        split: str = "dev",
    ):
        _check_split(data, split)
        if init not in ("supernet", "teacher", "scratch", "warm"):
            raise ConfigError(f"init = {init!r}: expected supernet, teacher, scratch or warm")
        if init == "supernet" and supernet is None:
            raise ConfigError("init = 'supernet' needs a trained supernet")
        self.teacher, self.data, self.teacher_key, self.steps, self.init = (
            teacher.eval(),
            data,
            teacher_key,
            steps,
            init,
        )
        self.job, self.losses, self.split = supernet, losses, split
        self.supernet: Supernet | None = None
        self.warm_start: Callable[[ArchSpec], nn.Module] | None = None
        self.config = (
            config.model_copy(update={"steps": steps, "eval_every": steps, "patience": None}) if steps else config
        )
        self.metric = data.task.main_metric
        if init == "teacher":  # the same function, most important units first
            reorder_by_importance(teacher, data, seed=config.seed)

    def prepare(self) -> None:
        if self.init == "supernet":
            self.supernet = self.job.get()

    def student(self, spec: ArchSpec) -> nn.Module:
        """The untrained student of ``spec`` at this evaluator's starting point (``init``)."""
        torch.manual_seed(self.config.seed)
        if self.init == "warm":
            if self.warm_start is None:
                raise ConfigError("init = 'warm': the strategy has not provided the warmed-up weights")
            return self.warm_start(spec)
        student = task_model(self.data.task, spec)
        if self.init == "supernet":
            if self.supernet is None:
                self.prepare()
            slice_weights(
                self.supernet.model, self.supernet.spec, student, student.encoder.spec, self.supernet.layers_for(spec)
            )
        elif self.init == "teacher":
            slice_weights(self.teacher, self.teacher.encoder.spec, student, student.encoder.spec)
        return student

    def evaluate(self, spec: ArchSpec, workdir: Path) -> Evaluation:
        return self.distill(self.student(spec), workdir)

    def distill(self, student: nn.Module, workdir: Path, *, steps: int | None = None) -> Evaluation:
        """Distil ``student`` (trained in place) as this evaluator trains its architectures, then
        evaluate it; ``steps`` replaces a short run's number of steps (the pruning strategy re-trains
        its own models this way, and gives its baselines all of its rounds' steps)."""
        start = time.perf_counter()
        shutil.rmtree(workdir, ignore_errors=True)  # a retried trial starts over
        spec = student.encoder.spec
        config = self.config
        if steps is not None:
            if self.steps is None:
                raise ConfigError("steps: a full distillation trains for its epochs, not a number of steps")
            config = config.model_copy(update={"steps": steps, "eval_every": steps})
        objective = TaskObjective(
            student,
            self.teacher if self.losses.needs_teacher else None,
            self.losses,
            task_type=self.data.task.task_type,
        )
        result = train_on_task(
            objective,
            self.data,
            config=config,
            run_dir=workdir,
            resume=False,
            fingerprint={"spec": spec.to_dict(), "evaluator": self.fingerprint()},
            progress=False,
            description="evaluate",
            keep_best=self.steps is None,
            evaluate_fn=lambda model: evaluate(model, self.data, self.split),
        )
        last = {k: v for k, v in result.history[-1].items() if k != "step"}
        metrics = result.best_metrics if self.steps is None else last
        shutil.rmtree(workdir / CHECKPOINTS, ignore_errors=True)
        (workdir / BEST).unlink(missing_ok=True)
        return Evaluation(metrics, time.perf_counter() - start, {"steps": result.steps, "init": self.init})

    def fingerprint(self) -> dict[str, Any]:
        return {
            "kind": self.name,
            "teacher": self.teacher_key,
            "task": self.data.task.name,
            "split": self.split,
            "data": self.data.hashes.get(self.split),
            "steps": self.steps,
            "init": self.init,
            "supernet": self.job.key if self.init == "supernet" else None,
            "losses": self.losses.model_dump(mode="json"),
            "train": self.config.model_dump(),
        }


def _check_split(data: TaskData, split: str) -> None:
    if not data.labeled(split):
        raise ConfigError(f"{data.task.name}: the {split} split has no labels to evaluate architectures on")
