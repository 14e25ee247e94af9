"""The weight-sharing supernet: one set of maximum-size weights from which every architecture of a
search space is cut, so thousands of candidates are scored without training each.

The supernet is the space's largest architecture (``SearchSpace.extreme(True)``) with a task head,
initialised from the fine-tuned task teacher after its heads, FFN neurons and hidden channels are
reordered by importance (DynaBERT), so that the leading units (the ones a slice keeps) are the
teacher's most important. An architecture of depth d uses the supernet layers
``even_layers(d, max depth)``; within them it keeps the leading heads, head dims, neurons and
channels (``modeling.elastic``). ``Supernet.forward(spec, ...)`` runs that sub-network through
differentiable views of the shared weights; ``extract(spec)`` copies it out as a standalone model
with the same outputs.

Training (``SupernetJob.train``) distils the teacher's predictions into the shared weights with the
sandwich rule (Yu & Huang 2019, as in DynaBERT and BigNAS): every step sums the losses of the
largest, the smallest and ``random_subnets`` random sub-networks (drawn from the space within its
parameter and FLOPs budget) on the same batch. Only prediction-level losses (teacher logits, gold
labels) are used: intermediate-layer losses would need one projection per width.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from torch import nn
from torch.func import functional_call

from .. import distributed
from ..arch import ArchSpec
from ..data import Task
from ..data.tasktypes import TaskType, get_task_type
from ..distill.context import TaskContext, context_for
from ..distill.objectives import Draws, LossConfig, Objective, prediction_losses
from ..distill.task import check_max_length, evaluate, reorder_by_importance, train_on_task
from ..distill.trainer import TrainConfig
from ..errors import CheckpointError, ConfigError, SpecError
from ..files import atomic_file, atomic_write_text, digest, files_digest
from ..lock import exclusive
from ..modeling.elastic import even_layers, slice_weights, sliced_state, unit_kinds
from .budget import Budget
from .space import SearchSpace

WEIGHTS, INFO, LOCK = "supernet.safetensors", "supernet.json", ".lock"
SKELETONS = 64  # sub-network module skeletons kept (they hold no weights)


def check_space(space: SearchSpace) -> None:
    """A supernet slices the kinds whose units importance orders (``unit_kinds``: mhsa attention, dense
    FFNs) with one embedding size (e.g. a factorized teacher's, whose tables and LayerNorm are shared
    whole) and one activation."""
    c = space.layer
    for name, values, allowed in (
        ("layer.attention", c.attention, unit_kinds("attention")),
        ("layer.ffn_kind", c.ffn_kind, unit_kinds("ffn")),
    ):
        other = [v for v in values if v not in allowed]
        if other:
            raise SpecError(
                f"{name}: a supernet slices only {', '.join(allowed)}, not {other[0]!r}; "
                "score such spaces with the distill evaluator (--evaluator distill --init scratch)"
            )
    if len(space.embedding_size) != 1:
        raise SpecError(f"embedding_size: a supernet shares one embedding size, the space has {space.embedding_size}")
    if len(c.activation) != 1:
        raise SpecError(f"layer.activation: a supernet shares one activation, the space has {c.activation}")


class Supernet(nn.Module):
    """Shared maximum-size weights (``self.model``) and the space they serve."""

    def __init__(self, space: SearchSpace, num_labels: int, task_type: str = "classification"):
        super().__init__()
        check_space(space)
        self.space, self.num_labels, self.task_type = space, num_labels, task_type
        self.spec = space.extreme(largest=True)
        self.model = self._model(self.spec)
        self._skeletons: dict[ArchSpec, tuple[nn.Module, dict[str, torch.Size]]] = {}

    def layers_for(self, spec: ArchSpec) -> list[int]:
        return even_layers(spec.num_layers, self.spec.num_layers)

    def _skeleton(self, spec: ArchSpec) -> tuple[nn.Module, dict[str, torch.Size]]:
        """A weightless module of ``spec`` (meta device) to run with the sliced weights."""
        if spec not in self._skeletons:
            if len(self._skeletons) >= SKELETONS:
                self._skeletons.pop(next(iter(self._skeletons)))
            with torch.device("meta"):
                module = self._model(spec)
            self._skeletons[spec] = (module, {n: p.shape for n, p in module.named_parameters()})
        return self._skeletons[spec]

    def forward(self, spec: ArchSpec, input_ids, attention_mask=None, token_type_ids=None, **kwargs):
        """(logits, EncoderOutput) of the sub-network ``spec``; gradients reach the shared weights."""
        module, shapes = self._skeleton(spec)
        weights = sliced_state(
            dict(self.model.named_parameters()), self.spec, shapes, spec, self.layers_for(spec), prefix="encoder."
        )
        module.train(self.training)
        return functional_call(module, weights, (input_ids, attention_mask, token_type_ids), kwargs)

    def _model(self, spec: ArchSpec) -> nn.Module:
        """A model of ``spec`` with the task's head (classification or regression: ``num_labels``)."""
        return get_task_type(self.task_type).build_model(spec, self.num_labels)

    def extract(self, spec: ArchSpec) -> nn.Module:
        """The sub-network ``spec`` as a standalone model (copied weights, eval mode)."""
        model = self._model(spec)
        slice_weights(self.model, self.spec, model, spec, self.layers_for(spec))
        return model.eval()

    def save(self, directory: Path, info: dict) -> None:
        """``supernet.safetensors`` and ``supernet.json`` (the space, labels and ``info``), atomically."""
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_file(directory / WEIGHTS) as tmp:
            save_model(self.model, str(tmp))
        meta = {
            "space": self.space.model_dump(mode="json"),
            "num_labels": self.num_labels,
            "task_type": self.task_type,
        } | info
        atomic_write_text(directory / INFO, json.dumps(meta, indent=1))


def load_supernet(directory: str | os.PathLike) -> Supernet:
    """A trained supernet saved by ``SupernetJob.train``."""
    directory = Path(directory)
    if not (directory / INFO).exists() or not (directory / WEIGHTS).exists():
        raise CheckpointError(f"{directory}: no trained supernet ({INFO} and {WEIGHTS}) in this directory")
    info = json.loads((directory / INFO).read_text(encoding="utf-8"))
    space = SearchSpace.from_dict(info["space"], source=str(directory / INFO))
    supernet = Supernet(space, info["num_labels"], info.get("task_type", "classification"))
    load_model(supernet.model, directory / WEIGHTS)
    return supernet


class SandwichObjective(Objective):
    """Sum of the prediction losses of the largest, smallest and ``random_subnets`` random
    sub-networks on one batch. The random ones come from ``Draws(seed)``: the same in a resumed run
    and in every process of a multi-process one."""

    def __init__(
        self,
        supernet: Supernet,
        teacher: nn.Module | None,
        losses: LossConfig,
        *,
        task_type: TaskType,
        random_subnets: int = 2,
        budget: Budget | None = None,
        seed: int = 0,
    ):
        if losses.hidden > 0 or losses.attention > 0 or losses.mlm > 0:
            raise ConfigError(
                "supernet training uses prediction losses only (labels, logits), not hidden, attention or mlm"
            )
        super().__init__(supernet, teacher, losses)
        self.task_type, self.random_subnets = task_type, random_subnets
        self.budget = budget if budget is not None else supernet.space.budget
        self.largest, self.smallest = supernet.spec, supernet.space.extreme(largest=False)
        self.draws = Draws(seed)

    def sample(self, rng: np.random.Generator) -> ArchSpec:
        """A random architecture of the space within its parameter and FLOPs budget (a few tries)."""
        for _ in range(50):
            spec = self.student.space.sample(rng)
            if not self.budget.violations(spec):
                return spec
        return spec

    def subnets(self) -> list[ArchSpec]:
        rng = self.draws.next()
        return [self.largest, self.smallest] + [self.sample(rng) for _ in range(self.random_subnets)]

    @property
    def parts_per_step(self) -> int:
        """One part per sub-network: the trainer runs a backward pass after each, so only one
        sub-network's graph is alive at a time."""
        return 2 + self.random_subnets

    def forward(self, batch: dict, part: int | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The summed losses of the step's sub-networks, or (``part`` = i) the i-th one's alone. Part 0
        draws the step's sub-networks and runs the teacher; the later parts of the step reuse them."""
        if part is None or part == 0:
            self._step = (self.subnets(), self._teacher_logits(batch))
        specs, t_logits = self._step
        if part is None or part == len(specs) - 1:
            del self._step
        losses, report = [], {}
        for i in range(len(specs)) if part is None else [part]:
            loss = self._loss(specs[i], batch, t_logits)
            losses.append(loss)
            name = ("largest", "smallest")[i] if i < 2 else "random"
            share = 1.0 if i < 2 else 1.0 / self.random_subnets  # "random": the mean over the random ones
            report[name] = report.get(name, 0.0) + loss.detach() * share
        return torch.stack(losses).sum(), report

    def _teacher_logits(self, batch: dict) -> torch.Tensor | None:
        if self.teacher is None:
            return None
        if self._cached(batch):
            return self.teacher_cache.predictions(batch["example_ids"].cpu().numpy()).to(batch["input_ids"].device)
        with torch.no_grad():
            return self.teacher(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))[0]

    def _loss(self, spec: ArchSpec, batch: dict, t_logits: torch.Tensor | None) -> torch.Tensor:
        s_logits, _ = self.student(spec, batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        parts = prediction_losses(self.config, s_logits, t_logits, batch.get("labels"), task_type=self.task_type)
        return self.total(parts)


@dataclass
class SupernetResult:
    directory: Path
    metrics: dict[str, float]
    steps: int
    reused: bool


SUPERNET_LOSSES = LossConfig(labels=0.0, logits=1.0)


@dataclass
class SupernetJob:
    """Everything that defines a trained supernet. ``key`` names the result before it exists, so a
    study can check its evaluator before any training; ``train`` trains it or reuses the one in
    ``run_dir`` trained for the same inputs (an interrupted training resumes from its last
    checkpoint). Dev metrics of the largest and smallest sub-networks are logged; the final weights
    are kept (the sandwich rule trains every width at once, so no single sub-network's best step
    selects the supernet)."""

    space: SearchSpace
    teacher_dir: Path
    task: Task
    run_dir: Path
    config: TrainConfig
    losses: LossConfig = SUPERNET_LOSSES
    random_subnets: int = 2
    data_dir: Path | None = None
    max_length: int = 128
    cache_dir: Path | None = None
    progress: bool = True
    context: TaskContext | None = None  # the teacher and the data, already loaded (not part of the key)

    def fingerprint(self) -> dict:
        return {
            "space": self.space.digest(),
            "teacher": files_digest(self.teacher_dir),
            "task": self.task.name,
            "losses": self.losses.model_dump(mode="json"),
            "random_subnets": self.random_subnets,
            "train": self.config.model_dump(),
            "max_length": self.max_length,
        }

    @cached_property
    def key(self) -> str:
        return digest(self.fingerprint())

    def get(self) -> Supernet:
        """The trained supernet (training it first when needed)."""
        self.train()
        return load_supernet(self.run_dir)

    def train(self) -> SupernetResult:
        """Train the supernet, or reuse the one in ``run_dir``. Many search workers may share
        ``run_dir``: the first trains it under a lock (``lock.exclusive``), the others wait and reuse it.
        Under a multi-process launch the main process holds the lock and all train together."""
        run_dir = Path(self.run_dir)
        lock = exclusive(run_dir / LOCK, waiting=self._waiting) if distributed.is_main() else nullcontext()
        with lock:
            done = distributed.broadcast(self._trained())
            return done if done is not None else self._train()

    def _waiting(self, owner: str) -> None:
        if self.progress:
            print(f"waiting for the supernet in {self.run_dir}, which {owner} (host pid) is training", file=sys.stderr)

    def _trained(self) -> SupernetResult | None:
        """The finished supernet of this job in ``run_dir``, if there is one."""
        run_dir = Path(self.run_dir)
        if (run_dir / INFO).exists():
            info = json.loads((run_dir / INFO).read_text(encoding="utf-8"))
            if info.get("key") == self.key and (run_dir / WEIGHTS).exists():
                return SupernetResult(run_dir, info["metrics"], info["steps"], reused=True)
        return None

    def _train(self) -> SupernetResult:
        run_dir, task, config = Path(self.run_dir), self.task, self.config
        if (run_dir / INFO).exists() and distributed.is_main():
            shutil.rmtree(run_dir / "training", ignore_errors=True)  # the finished training of another supernet
        distributed.barrier()

        context = context_for(
            self.context,
            self.teacher_dir,
            task,
            max_length=self.max_length,
            data_dir=self.data_dir,
            cache_dir=self.cache_dir,
        )
        teacher = context.teacher()
        check_max_length(
            self.max_length,
            self.space.extreme(largest=True),
            "the search space's architectures",
            "its embeddings.max_positions",
        )
        data = context.data()
        torch.manual_seed(config.seed)
        supernet = Supernet(self.space, task.num_labels, task.type)
        reorder_by_importance(teacher, data, seed=config.seed)
        try:
            slice_weights(teacher, teacher.encoder.spec, supernet.model, supernet.spec)
        except SpecError as e:
            raise SpecError(
                f"the search space's largest architecture ({supernet.spec.summary()}) cannot be cut "
                f"from the teacher ({teacher.encoder.spec.summary()}): {e}"
            ) from None
        objective = SandwichObjective(
            supernet,
            teacher if self.losses.needs_teacher else None,
            self.losses,
            task_type=task.task_type,
            random_subnets=self.random_subnets,
            seed=config.seed,
        )
        main = task.main_metric

        def evaluate_ends(net: Supernet) -> dict[str, float]:
            largest = evaluate(net.extract(objective.largest), data, "dev")[main]
            smallest = evaluate(net.extract(objective.smallest), data, "dev")[main]
            return {main: (largest + smallest) / 2, f"largest_{main}": largest, f"smallest_{main}": smallest}

        work = run_dir / "training"
        result = train_on_task(
            objective,
            data,
            config=config.model_copy(update={"patience": None}),
            run_dir=work,
            resume=True,
            fingerprint={"supernet": self.key},
            progress=self.progress,
            description="supernet",
            evaluate_fn=evaluate_ends if data.labeled("dev") else None,
            keep_best=False,
        )
        last = result.history[-1] if result.history else {}
        if last.get("step") == result.steps:  # evaluated after the last step already
            metrics = {k: v for k, v in last.items() if k != "step"}
        else:
            metrics = evaluate_ends(supernet) if data.labeled("dev") else {}
        if distributed.is_main():
            supernet.save(
                run_dir,
                {
                    "key": self.key,
                    "fingerprint": self.fingerprint(),
                    "metrics": metrics,
                    "steps": result.steps,
                    "teacher_spec": teacher.encoder.spec.to_dict(),
                },
            )
            shutil.rmtree(work / "checkpoints", ignore_errors=True)
        distributed.barrier()
        return SupernetResult(run_dir, metrics, result.steps, reused=False)
