"""The obvious compact models that a searched one has to beat at the same budget: the teacher shrunk
uniformly (BERT-all uniform: h, heads, query/key, value and FFN sizes of every layer scaled by one
factor, the largest within the budget) and the teacher with layers dropped (BERT-ℓ: the deepest stack
of its evenly spaced layers within the budget, at full width)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .arch import ArchSpec
from .modeling.elastic import even_layers

if TYPE_CHECKING:
    from .search.budget import Budget

BASELINES = ("uniform", "layers")


def scaled(spec: ArchSpec, factor: float) -> ArchSpec:
    """Every dimension of every layer and the hidden size times ``factor``, rounded, at least 1."""

    def s(n: int) -> int:
        return max(1, round(n * factor))

    layers = [
        {
            "attention": la.attention.model_copy(
                update={
                    "heads": s(la.attention.heads),
                    "qk_dim": s(la.attention.qk_dim),
                    "v_dim": s(la.attention.v_dim),
                }
            ),
            "ffn": la.ffn.model_copy(update={"size": s(la.ffn.size)}),
        }
        for la in spec.layers
    ]
    return spec.replace(hidden=s(spec.hidden), layers=layers)


def uniform_within(spec: ArchSpec, cost: Callable[[ArchSpec], float], target: float) -> ArchSpec:
    """BERT-all uniform: ``spec`` scaled by the largest factor whose (rounded) architecture costs at
    most ``target``."""
    return scaled(spec, uniform_factor(spec, cost, target))


def uniform_factor(spec: ArchSpec, cost: Callable[[ArchSpec], float], target: float) -> float:
    """The factor ``uniform_within`` scales by (0 when not even the smallest scaling fits)."""
    low, high = 0.0, 1.0
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if cost(scaled(spec, mid)) <= target else (low, mid)
    return low


def layers_within(spec: ArchSpec, cost: Callable[[ArchSpec], float], target: float) -> ArchSpec | None:
    """BERT-ℓ: the deepest stack of the teacher's layers (evenly spaced when sliced, fewer than all)
    within ``target``; None when even one layer is over it."""
    for depth in range(spec.num_layers - 1, 0, -1):
        shallower = spec.replace(layers=[spec.layers[j] for j in even_layers(depth, spec.num_layers)])
        if cost(shallower) <= target:
            return shallower
    return None


def build(name: str, teacher: ArchSpec, budget: "Budget") -> ArchSpec:
    """The ``uniform`` or ``layers`` baseline of ``teacher`` within the budget's parameter and FLOPs
    bounds (a latency bound is measured afterwards, not used to build). Raises ValueError saying why
    there is none."""
    bounds = budget.bounded(teacher)
    if not bounds:
        raise ValueError("needs a params, total_params or flops bound in the budget to be built")

    def cost(spec: ArchSpec) -> float:
        return max(value / limit for _name, limit, value in budget.bounded(spec))

    if name == "uniform":
        factor = uniform_factor(teacher, cost, 1.0)
        heads = min(la.attention.heads for la in teacher.layers)
        if factor == 0.0 or round(heads * factor) < 1:
            raise ValueError(
                f"the budget is so small that shrinking the teacher uniformly leaves no attention head "
                f"(scale {factor:.3f} of {heads} heads)"
            )
        return scaled(teacher, factor)
    if name == "layers":
        spec = layers_within(teacher, cost, 1.0)
        if spec is None:
            raise ValueError("the budget is so small that not even one of the teacher's layers fits")
        return spec
    raise ValueError(f"unknown baseline {name!r} (built in: {', '.join(BASELINES)})")
