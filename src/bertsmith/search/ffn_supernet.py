"""EfficientBERT's FFN supernet (the EfficientBERT paper): a fixed backbone whose every layer holds
``MAX_STACK`` stacked FFN blocks at the base width (the backbone's hidden size), from which every
per-layer choice of expression, stack depth and inner width ratio is cut.

A choice for one layer is a ``LayerFFN``: the expression, how many of the stacked blocks it uses
(the first ``stack``) and the ratio divisor ``j`` (inner width ``base // j``, the leading neurons of
each block). Every valid expression has the same two weight shapes (hidden→inner, inner→hidden), so
one set of linears serves every expression (the candidate applies its expression in place of
Linear→GELU→Linear, as in EfficientBERT).

``FFNSupernet.activate(layout)`` makes the shared model compute that sub-network (differentiably, for
warm-up training); ``extract(layout)`` copies it out as a standalone model with the same outputs.
``warm_up`` distils the teacher into the supernet with the hidden-state and attention losses
(the EfficientBERT paper), drawing a new architecture of the stage's space at every step.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch import nn

from ..arch import ArchSpec
from ..data.tasktypes import TaskType
from ..distill.objectives import Draws, LossConfig, TaskObjective
from ..distill.task import train_on_task
from ..distill.trainer import TrainConfig
from ..errors import SpecError
from ..files import atomic_file, atomic_write_text
from ..data.tasktypes import get_task_type
from ..modeling.elastic import slice_weights
from ..modeling.expr import evaluate, parse
from ..modeling.fast import dropout_add
from ..modeling.searched_ffn import SearchedFFN
from .ffn_space import SEED

MAX_STACK = 4
RATIOS = (1, 2, 3, 4)  # inner width = base // j: the ratios 1, 1/2, 1/3, 1/4
WARMUP_LOSSES = LossConfig(labels=0.0, logits=0.0, hidden=1.0, attention=1.0)


@dataclass(frozen=True)
class LayerFFN:
    """One layer's FFN choice: ``expression`` in ``stack`` blocks of inner width base // ``ratio``."""

    expression: str
    stack: int
    ratio: int

    def __str__(self) -> str:
        return f"{self.stack}x1/{self.ratio} {self.expression}"


Layout = tuple[LayerFFN, ...]


def layout_spec(backbone: ArchSpec, layout: Sequence[LayerFFN]) -> ArchSpec:
    """The backbone (attention, hidden, embeddings) with ``layout``'s FFNs (base width = hidden)."""
    if len(layout) != backbone.num_layers:
        raise SpecError(f"layout: {len(layout)} FFN choices for a backbone of {backbone.num_layers} layers")
    layers = [
        {
            "attention": la.attention.model_dump(mode="json"),
            "ffn": {
                "kind": "searched",
                "expression": f.expression,
                "stack": f.stack,
                "size": backbone.hidden // f.ratio,
            },
        }
        for la, f in zip(backbone.layers, layout)
    ]
    return ArchSpec.from_dict({**backbone.to_dict(), "layers": layers})


def layout_of(spec: ArchSpec) -> Layout:
    """The FFN choices of a spec built by ``layout_spec``."""
    return tuple(LayerFFN(la.ffn.expression, la.ffn.stack, spec.hidden // la.ffn.size) for la in spec.layers)


def supernet_spec(backbone: ArchSpec) -> ArchSpec:
    """The largest layout: ``MAX_STACK`` full-width blocks with the seed expression in every layer."""
    return layout_spec(backbone, [LayerFFN(SEED, MAX_STACK, 1)] * backbone.num_layers)


class ElasticFFN(SearchedFFN):
    """A searched FFN of ``MAX_STACK`` blocks at the base width that computes any (expression, stack,
    inner width) cut from its weights; ``active`` None computes the full stack with its own expression."""

    active: tuple | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.active is None:
            return super().forward(x)
        tree, stack, inner = self.active
        for block in self.blocks[:stack]:
            w1, b1, w2 = block.lin1.weight[:inner], block.lin1.bias[:inner], block.lin2.weight[:, :inner]
            first = lambda t, w=w1, b=b1: F.linear(t, w, b)  # noqa: E731
            second = lambda t, w=w2, b=block.lin2.bias: F.linear(t, w, b)  # noqa: E731
            x = block.norm(dropout_add(x, evaluate(tree, x, (first, second)), block.dropout))
        return x


class FFNSupernet:
    """The backbone with ``ElasticFFN`` layers (``model``) and the largest layout (``spec``)."""

    def __init__(self, backbone: ArchSpec, num_labels: int, task_type: str = "classification"):
        self.backbone, self.num_labels, self.task_type = backbone, num_labels, get_task_type(task_type)
        self.spec = supernet_spec(backbone)
        self.model = self.task_type.build_model(self.spec, num_labels)
        eps, drop = self.spec.layer_norm_eps, self.spec.hidden_dropout
        for layer, la in zip(self.model.encoder.layers, self.spec.layers):
            layer.ffn = ElasticFFN(la.ffn, self.spec.hidden, eps=eps, dropout=drop)

    def activate(self, layout: Sequence[LayerFFN] | None) -> None:
        """Make ``model`` compute ``layout`` (None: the full stacks with the seed expression)."""
        for i, layer in enumerate(self.model.encoder.layers):
            f = None if layout is None else layout[i]
            layer.ffn.active = None if f is None else (parse(f.expression), f.stack, self.spec.hidden // f.ratio)

    def extract(self, layout: Sequence[LayerFFN]) -> nn.Module:
        """``layout`` as a standalone model (copied weights, train mode: a candidate is trained next)."""
        spec = layout_spec(self.backbone, layout)
        model = self.task_type.build_model(spec, self.num_labels)
        slice_weights(self.model, self.spec, model, spec)
        return model

    def start_from(self, teacher: nn.Module) -> None:
        """Initialise from the (importance-ordered) teacher: the backbone's slice of it, each layer's
        blocks cut from the teacher's dense FFN (``modeling.elastic``)."""
        slice_weights(teacher, teacher.encoder.spec, self.model, self.spec)

    def save(self, directory: Path, info: dict) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_file(directory / "supernet.safetensors") as tmp:
            save_model(self.model, str(tmp))
        atomic_write_text(directory / "supernet.json", json.dumps(info, indent=1, default=str))

    def load(self, directory: Path) -> dict | None:
        """Load the weights saved in ``directory``; returns their info, or None when there are none."""
        info, weights = directory / "supernet.json", directory / "supernet.safetensors"
        if not info.exists() or not weights.exists():
            return None
        load_model(self.model, weights)
        return json.loads(info.read_text(encoding="utf-8"))


class WarmupObjective(TaskObjective):
    """The warm-up loss (hidden-state and attention terms against the teacher) of a new architecture
    drawn by ``sample`` at every step from ``Draws(seed)`` (the same in a resumed warm-up)."""

    def __init__(
        self,
        supernet: FFNSupernet,
        teacher: nn.Module,
        losses: LossConfig,
        *,
        task_type: TaskType,
        sample: Callable[[np.random.Generator], Layout],
        seed: int = 0,
    ):
        super().__init__(supernet.model, teacher, losses, task_type=task_type)
        self.supernet, self.sample = supernet, sample
        self.draws = Draws(seed)

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self.supernet.activate(self.sample(self.draws.next()))
        try:
            return super().forward(batch)
        finally:
            self.supernet.activate(None)


def warm_up(
    supernet: FFNSupernet,
    teacher: nn.Module,
    data,
    *,
    sample: Callable[[np.random.Generator], Layout],
    config: TrainConfig,
    run_dir: Path,
    fingerprint: dict,
    losses: LossConfig = WARMUP_LOSSES,
    progress: bool = True,
    description: str = "warm-up",
) -> int:
    """Distil ``teacher`` into the supernet on ``data``'s train split (its texts; labels are not used),
    one architecture drawn by ``sample`` per step. ``data`` holds no dev split (the search's data is
    carved from train), so nothing is evaluated. Resumes an interrupted warm-up. Returns the steps."""
    objective = WarmupObjective(
        supernet, teacher, losses, task_type=data.task.task_type, sample=sample, seed=config.seed
    )
    result = train_on_task(
        objective,
        data,
        config=config.model_copy(update={"patience": None}),
        run_dir=run_dir,
        resume=True,
        fingerprint=fingerprint,
        progress=progress,
        description=description,
        keep_best=False,
    )
    return result.steps


def layout_json(layout: Sequence[LayerFFN]) -> list[dict]:
    return [asdict(f) for f in layout]
