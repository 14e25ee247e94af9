"""schuBERT's prunable gates (the schuBERT paper): scale vectors α on the hidden size h and, per layer,
on heads a_i, query/key dims k_i (shared by the layer's heads), value dims v_i and FFN neurons f_i,
folded into the weights; their cost-weighted L1 penalty; the choice of the entries to zero for a
cost target; and the physical deletion of the zeroed units.

Layers are not pruned by default (the paper keeps them all). With ``layers=True`` each layer also
gets one gate α_l scaling its two residual branches (attention output and FFN output), with β_l the
cost of the whole layer; a layer whose gate is zeroed is deleted. That is bertsmith's extension, and
it is not exact: with post-LayerNorm blocks a zero-gated layer still applies its two LayerNorms.

The gates multiply whole rows and columns of the frozen weights (K̃ = K·𝒟(α_k)𝒟(α_a)𝒟(α_h) and so
on). bertsmith also scales the biases of those rows, so that a zeroed unit contributes exactly
nothing and deleting it keeps the function (bertsmith's choice; the paper names the matrices only).

β, the cost that one unit of a dimension carries, comes from the cost model: the drop in parameters
(non-embedding, or total) or in FLOPs when that one unit is removed from the architecture, divided by
the drop for one head of the first layer (the paper's normalisation, β_a = 1). With total parameters,
BERT-base gives the published β_h ≈ 0.73, β_k = β_v ≈ 0.094 and β_f ≈ 0.0078; with non-embedding
parameters β_h is 0.57, since a hidden unit then no longer carries its embedding column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch
from torch import nn
from torch.func import functional_call

from ..arch import ArchSpec
from ..cost import encoder_params, flops, params
from ..data.tasktypes import TaskType
from ..distill.objectives import LossConfig, Objective, prediction_losses
from ..errors import ConfigError
from ..modeling.elastic import Units, check_plain_kinds, select_units, slice_weights

DIMS = ("h", "a", "k", "v", "f")
VARIANTS = {"all": DIMS, "h": ("h",), "f": ("f",), "a": ("a",)}
"""The paper's schuBERT-all / -h / -f / -a: which dimensions are pruned."""
Ranking = Literal["raw", "weighted"]


def cost_function(kind: str, seq_len: int = 128) -> Callable[[ArchSpec], float]:
    """The cost that pruning lowers: ``params`` (non-embedding), ``total_params`` or ``flops``."""
    if kind == "params":
        return encoder_params
    if kind == "total_params":
        return params
    if kind == "flops":
        return lambda spec: flops(spec, seq_len)
    raise ConfigError(f"cost {kind!r}: expected params, total_params or flops")


_FIELDS = {"a": "heads", "k": "qk", "v": "v", "f": "neurons"}  # gate → Units field


def _without_one(spec: ArchSpec, dim: str, layer: int) -> ArchSpec:
    if dim == "l":
        return spec.replace(layers=[la for i, la in enumerate(spec.layers) if i != layer])
    units = Units.all(spec)
    if dim == "h":
        units.hidden = units.hidden[1:]
    else:
        getattr(units, _FIELDS[dim])[layer] = getattr(units, _FIELDS[dim])[layer][1:]
    return units.spec_of(spec)


def unit_costs(spec: ArchSpec, cost: Callable[[ArchSpec], float]) -> dict[str, list[float]]:
    """β per dimension: ``h`` one value, the others (and ``l``, whole layers) one per layer;
    normalised to one head of layer 0."""
    base = cost(spec)
    raw = {"h": [base - cost(_without_one(spec, "h", 0))]}
    for dim in (*DIMS[1:], "l"):
        raw[dim] = [base - cost(_without_one(spec, dim, i)) for i in range(spec.num_layers)]
    unit = raw["a"][0]
    return {dim: [value / unit for value in values] for dim, values in raw.items()}


class Gates(nn.Module):
    """α vectors for the pruned dimensions (``dims`` ⊆ DIMS), all ones at the start; dimensions not
    pruned have no gate. ``layers``: also one gate per layer (key ``l``)."""

    def __init__(self, spec: ArchSpec, dims: tuple[str, ...] = DIMS, *, layers: bool = False):
        super().__init__()
        unknown = [d for d in dims if d not in DIMS]
        if unknown or not dims:
            raise ConfigError(f"pruned dimensions {list(dims)}: expected some of {', '.join(DIMS)}")
        check_plain_kinds(spec)
        self.spec, self.dims, self.layers = spec, tuple(dims), layers
        sizes = {
            "a": [la.attention.heads for la in spec.layers],
            "k": [la.attention.qk_dim for la in spec.layers],
            "v": [la.attention.v_dim for la in spec.layers],
            "f": [la.ffn.size for la in spec.layers],
        }
        self.alpha = nn.ParameterDict()
        if "h" in dims:
            self.alpha["h"] = nn.Parameter(torch.ones(spec.hidden))
        for dim in dims:
            if dim != "h":
                for i, n in enumerate(sizes[dim]):
                    self.alpha[f"{dim}{i}"] = nn.Parameter(torch.ones(n))
        if layers:
            self.alpha["l"] = nn.Parameter(torch.ones(spec.num_layers))

    def vector(self, dim: str, layer: int, size: int) -> torch.Tensor:
        key = "h" if dim == "h" else f"{dim}{layer}"
        return self.alpha[key] if key in self.alpha else torch.ones(size)

    def layer_gate(self, layer: int) -> torch.Tensor:
        return self.alpha["l"][layer] if "l" in self.alpha else torch.ones(())

    def entries(self) -> list[tuple[str, int, torch.Tensor]]:
        """(dimension, layer, α) of every gate; the layer gate is ``("l", 0, α_l)``."""
        return [(key[0], 0 if key in ("h", "l") else int(key[1:]), alpha) for key, alpha in self.alpha.items()]

    def penalty(self, betas: dict[str, list[float]]) -> torch.Tensor:
        """Σ β·‖α‖₁ over the gates."""
        total = torch.zeros(())
        for dim, layer, alpha in self.entries():
            weights = torch.tensor(betas["l"]) if dim == "l" else betas[dim][layer]
            total = total + (weights * alpha.abs()).sum()
        return total

    def statistics(self) -> dict[str, dict[str, float]]:
        """Per gate: its size and the mean, min and max of |α| (what the pruning path records)."""
        out = {}
        for key, alpha in self.alpha.items():
            a = alpha.detach().abs()
            out[key] = {
                "n": a.numel(),
                "mean": round(float(a.mean()), 4),
                "min": round(float(a.min()), 4),
                "max": round(float(a.max()), 4),
            }
        return out


def gated_weights(model: nn.Module, gates: Gates) -> dict[str, torch.Tensor]:
    """``model``'s parameters with the gates folded in (differentiable in α)."""
    encoder = model.encoder if hasattr(model, "encoder") else model
    prefix = "encoder." if hasattr(model, "encoder") else ""
    spec = encoder.spec
    params = dict(model.named_parameters())
    out = dict(params)
    h = gates.vector("h", 0, spec.hidden)
    for i, layer in enumerate(spec.layers):
        att = layer.attention
        a, k, v, f = (
            gates.vector(d, i, n)
            for d, n in (("a", att.heads), ("k", att.qk_dim), ("v", att.v_dim), ("f", layer.ffn.size))
        )
        qk_rows = (a[:, None] * k[None, :]).reshape(-1)
        v_rows = (a[:, None] * v[None, :]).reshape(-1)
        rows = torch.cat([qk_rows, qk_rows, v_rows])
        p = f"{prefix}layers.{i}."
        branch = gates.layer_gate(i) * h  # the outputs of both residual branches
        scales = {
            "attention.qkv.weight": rows[:, None] * h[None, :],
            "attention.qkv.bias": rows,
            "attention.out.weight": branch[:, None] * v_rows[None, :],
            "attention.out.bias": branch,
            "ffn.up.weight": f[:, None] * h[None, :],
            "ffn.up.bias": f,
            "ffn.down.weight": branch[:, None] * f[None, :],
            "ffn.down.bias": branch,
        }
        for name, scale in scales.items():
            out[p + name] = params[p + name] * scale
    return out


class GatedModel(nn.Module):
    """A frozen model run with its gates folded in; only the gates train."""

    def __init__(self, model: nn.Module, dims: tuple[str, ...] = DIMS, *, layers: bool = False):
        super().__init__()
        self.model = model.requires_grad_(False)
        self.gates = Gates(self.encoder.spec, dims, layers=layers)

    @property
    def encoder(self) -> nn.Module:
        return self.model.encoder if hasattr(self.model, "encoder") else self.model

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, **kwargs):
        return functional_call(
            self.model, gated_weights(self.model, self.gates), (input_ids, attention_mask, token_type_ids), kwargs
        )


class GateObjective(Objective):
    """Train the gates (the schuBERT paper, Eq. 2): the task distillation loss of the gated model plus
    γ·Σβ‖α‖₁ / Σβ·n. Dividing by the penalty at α = 1 (Σβ·n, the whole prunable cost) makes γ a
    plain number: the paper's γ is NOT FOUND, and that normalisation is bertsmith's choice."""

    def __init__(
        self,
        gated: GatedModel,
        teacher: nn.Module,
        betas: dict[str, list[float]],
        *,
        gamma: float,
        task_type: TaskType,
        losses: LossConfig = LossConfig(),
    ):
        super().__init__(gated, teacher, losses.model_copy(update={"hidden": 0.0, "attention": 0.0, "mlm": 0.0}))
        self.betas, self.gamma, self.task_type = betas, gamma, task_type
        with torch.no_grad():
            self.scale = float(gated.gates.penalty(betas))

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        s_logits, t_logits, parts = self._run(batch)
        parts |= prediction_losses(self.config, s_logits, t_logits, batch.get("labels"), task_type=self.task_type)
        sparsity = self.student.gates.penalty(self.betas) / self.scale
        return self.total(parts) + self.gamma * sparsity, parts | {"sparsity": sparsity.detach()}


@dataclass
class Keep:
    """What survives a pruning round: the units of every layer, and which layers."""

    units: Units
    layers: list[int]

    def spec_of(self, spec: ArchSpec) -> ArchSpec:
        pruned = self.units.spec_of(spec)
        return pruned.replace(layers=[pruned.layers[i] for i in self.layers])


def choose_removals(
    gates: Gates, target: float, cost: Callable[[ArchSpec], float], *, ranking: Ranking = "raw"
) -> Keep:
    """What to keep after zeroing the gate entries with the smallest scores (|α|, or β·|α| for
    ``weighted``) one at a time until the architecture's cost is at most ``target``. Every
    dimension keeps at least one unit, and at least one layer stays. Raises ConfigError when even
    that is above ``target``."""
    if ranking not in ("raw", "weighted"):
        raise ConfigError(f"ranking {ranking!r}: expected raw or weighted")
    spec = gates.spec
    betas = unit_costs(spec, cost) if ranking == "weighted" else None
    entries = []
    for dim, layer, alpha in gates.entries():
        for j, x in enumerate(alpha.detach()):
            weight = 1.0 if betas is None else betas[dim][j if dim == "l" else layer]
            entries.append((weight * abs(float(x)), dim, layer, j))
    entries.sort()
    keep = Keep(Units.all(spec), list(range(spec.num_layers)))
    kept = {(dim, layer): list(range(len(alpha))) for dim, layer, alpha in gates.entries()}
    current = spec
    for _score, dim, layer, j in entries:
        if cost(current) <= target:
            break
        if len(kept[dim, layer]) == 1 or (dim != "h" and dim != "l" and layer not in keep.layers):
            continue  # keep one unit of every dimension; a deleted layer's units cost nothing
        kept[dim, layer].remove(j)
        if dim == "l":
            keep.layers = list(kept[dim, layer])
        elif dim == "h":
            keep.units.hidden = torch.tensor(kept[dim, layer])
        else:
            getattr(keep.units, _FIELDS[dim])[layer] = torch.tensor(kept[dim, layer])
        current = keep.spec_of(spec)
    if cost(current) > target:
        raise ConfigError(
            f"the target {target:,.0f} is below the smallest model these gates can reach ({cost(current):,.0f})"
        )
    return keep


def smallest(spec: ArchSpec, dims: tuple[str, ...] = DIMS, *, layers: bool = False) -> ArchSpec:
    """The smallest architecture that pruning ``dims`` can reach from ``spec``: one unit of each
    of those dimensions (and one layer when ``layers`` are pruned)."""
    units = Units.all(spec)
    if "h" in dims:
        units.hidden = units.hidden[:1]
    for dim, field in _FIELDS.items():
        if dim in dims:
            setattr(units, field, [index[:1] for index in getattr(units, field)])
    return Keep(units, [0] if layers else list(range(spec.num_layers))).spec_of(spec)


@torch.no_grad()
def prune(model: nn.Module, gates: Gates, keep: Keep) -> nn.Module:
    """Fold the gates into ``model``'s weights and delete every unit and layer outside ``keep``: a
    dense, smaller model of the same class."""

    def new(spec: ArchSpec) -> nn.Module:
        return type(model)(spec, model.num_labels) if hasattr(model, "num_labels") else type(model)(spec)

    folded = new(gates.spec)
    folded.load_state_dict({name: t.detach() for name, t in gated_weights(model, gates).items()})
    folded.train(model.training)
    selected = select_units(folded, keep.units)
    if len(keep.layers) == gates.spec.num_layers:
        return selected
    spec = keep.spec_of(gates.spec)
    smaller = new(spec).train(model.training)
    slice_weights(selected, keep.units.spec_of(gates.spec), smaller, spec, keep.layers)
    return smaller
